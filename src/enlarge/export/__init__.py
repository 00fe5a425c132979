"""Exports of a model for other runtimes: ONNX (encoder and decoder graphs, run by onnxruntime)."""

from enlarge.export.onnx import OnnxExport, OnnxModel, export_onnx, load_onnx

__all__ = ["OnnxExport", "OnnxModel", "export_onnx", "load_onnx"]
