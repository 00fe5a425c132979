"""Little–Big adaptive rendering: run a model only in the regions where it is expected to pay, its little
companion elsewhere.

A model whose descriptor names a `little` companion — a cheaper registered model whose output it refines: for
`lite` its own bicubic skip, for `detail` the whole `lite` (specs.Companion) — can be rendered region by region:

1. **score**: the LR input is cut into routing blocks (the companion's `block`, BLOCK pixels by default; `detail`
   routes 32-pixel patches, ARM-style), each scored by the gradient energy of its luma, from the input alone (no
   decoding to decide);
2. **route**: a calibration stored in the model card (`card.extra["adaptive"]`, written by
   `enlarge calibrate-adaptive`) maps score and scale to the expected MSE of big and of little; blocks whose
   expected MSE reduction exceeds a threshold (default: the calibrated one), or the top `route_fraction` of them,
   are routed to the big model;
3. **render**, tile by tile as `render` does: the little model everywhere; the big model's encoder once, only on
   the LR windows around routed regions and not at all in tiles without them; its decoder only on output pixels
   under the routing mask, which is 1 on routed blocks and ramps linearly to 0 over 2·FEATHER_RADIUS output pixels
   around them. `out = lerp(little, big, mask)`: exactly big where routed, exactly little far from it, no visible
   step. A window holds its pixels plus the companion's `context` (None: the big model's whole receptive field,
   so its features are those of a whole-image encode; `detail`'s 36 pixels would make every window cover the
   image, so it sees 4 pixels and its features differ from a whole-image encode only near window borders).

The saving is the big model's work on what is not routed, less the little model's work everywhere. Routing
FULL_RENDER_SHARE of the blocks or more runs the plain big render, routing none the plain little render: the end
points are exactly the two models.

Three modules: `routing` (scores, the routing policy, the calibration and where it is stored), `blend` (the
blended renderer), `fitting` (fitting a calibration from per-block errors). Their public names are importable from
here.
"""

from enlarge.engine.adaptive.blend import (
    FEATHER_RADIUS,
    FULL_RENDER_SHARE,
    AdaptiveOutput,
    feathered_mask,
    render_adaptive,
    render_routed,
)
from enlarge.engine.adaptive.fitting import (
    BlockErrors,
    block_errors,
    errors_of_renders,
    fit_calibration,
    tune_threshold,
)
from enlarge.engine.adaptive.routing import (
    BLOCK,
    CALIBRATION_KEY,
    Routing,
    RoutingCalibration,
    ScaleTable,
    block_scores,
    check_routable,
    effective_scale,
    little_model,
    route_blocks,
    routing_geometry,
)

__all__ = [
    "BLOCK",
    "CALIBRATION_KEY",
    "FEATHER_RADIUS",
    "FULL_RENDER_SHARE",
    "AdaptiveOutput",
    "BlockErrors",
    "Routing",
    "RoutingCalibration",
    "ScaleTable",
    "block_errors",
    "block_scores",
    "check_routable",
    "effective_scale",
    "errors_of_renders",
    "feathered_mask",
    "fit_calibration",
    "little_model",
    "render_adaptive",
    "render_routed",
    "route_blocks",
    "routing_geometry",
    "tune_threshold",
]
