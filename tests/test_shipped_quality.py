"""The shipped weights keep their quality: lite on Set5 reaches the PSNR its model card records (the rows
`scripts/record_card_evaluation.py` wrote from the same protocol), within rounding of the float kernels."""

from __future__ import annotations

import sys

import pytest

from conftest import BENCHMARK, REPO, require
from enlarge.models.card import ModelCard, card_path_for
from enlarge.models.specs import SPECS, bundled_weights

sys.path.insert(0, str(REPO / "scripts"))
from record_card_evaluation import PIN_SCALES, pin_rows  # noqa: E402

MODEL = "lite"
# bf16 vs fp32 (the card's default precision needs native bf16) and kernel differences between CPUs move the
# mean PSNR by thousandths of a dB; a real regression of the weights costs tenths.
TOLERANCE_DB = 0.02
SSIM_TOLERANCE = 0.002


@pytest.mark.slow
def test_bundled_lite_reaches_the_psnr_in_its_card() -> None:
    require(BENCHMARK / "Set5", "the Set5 benchmark")
    weights = bundled_weights(SPECS[MODEL])
    if weights is None:
        pytest.skip(f"{MODEL} weights are not bundled in this checkout")
    card = ModelCard.read(card_path_for(weights))
    recorded = {(row["dataset"], row["scale"]): row for row in card.evaluation if row.get("degrade") is None}
    missing = [scale for scale in PIN_SCALES if ("Set5", scale) not in recorded]
    assert not missing, f"the card records no Set5 x{missing}: run scripts/record_card_evaluation.py --model {MODEL}"
    for row in pin_rows(MODEL):
        pinned = recorded[(row["dataset"], row["scale"])]
        assert row["psnr"] >= pinned["psnr"] - TOLERANCE_DB, (row, pinned)
        assert row["ssim"] >= pinned["ssim"] - SSIM_TOLERANCE, (row, pinned)
