"""Depth reduction of trained models (`enlarge compress`): EASIER's entropy metric, the remove / fine-tune loop,
and exact merges of the linear layers it leaves side by side."""
