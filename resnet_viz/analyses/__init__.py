"""Why do residual nets train better? Six measurements on a trained or fresh model, plain or residual.

One module per analysis:
  * `response.response_std`      — He et al. 2015, Fig. 7: the std of every conv layer's response (after BN,
                                   before the addition and the ReLU). Residual functions are small: ResNets respond
                                   more weakly.
  * `branch.branch_ratios`       — ‖F(x)‖ / ‖shortcut(x)‖ per residual block: how much each block changes its input.
                                   `probes.branch_ratio_probe` is the cheap version a trainer calls every few steps.
  * `lesion.lesion_single`,      — Veit et al. 2016: delete one block, or k random blocks, at test time. A ResNet
    `lesion.lesion_random`         degrades gracefully (it behaves like an ensemble of paths); a plain net collapses.
  * `landscape.loss_landscape_1d/2d` — Li et al. 2018: the loss along filter-normalised random directions around the
                                   weights. Plain deep nets are chaotic, ResNets nearly convex.
  * `shattering.gradient_shattering` — Balduzzi et al. 2017: input gradients along a short line through one image.
                                   In deep plain nets they decorrelate like white noise; shortcuts keep them correlated.
  * `dead_relus.dead_relus`      — per ReLU, the fraction of units that stay zero for every image.
`common` holds what they share (input checks, the `prepared` context, evaluation, the image budget and its cost
model); everything public is re-exported here: `from resnet_viz import analyses as A; A.response_std(model, images)`.
Two views of single nets live here too, imported by their module and not re-exported (each pulls in what it alone
needs): `gradcam` (where a trained net looks, for the Grad-CAM page) and `init_gradients` (every layer's gradient
norm at step 0, for the Build page and the `gradients` command).

Conventions shared by every function:
  * images are uint8 [N,3,H,W] (normalised here with `data.normalize`), labels int64 [N]; both are moved to the
    model's device. Results are plain Python / numpy.
  * The model is put in eval mode (BN uses its running statistics, so results do not depend on the batch), every
    block's `lesioned` flag is cleared (the intact network is analysed; the lesion studies set flags themselves),
    and parameters stop requiring gradients. All three — each module's mode, each parameter's requires_grad and
    each block's lesioned flag — are restored afterwards, also on error; hooks are always removed. Weights changed
    by the loss landscape are copied back bit for bit.
  * On a fresh (untrained) model, BN's running statistics are still their initial 0/1, so in eval mode BN is
    (almost) the identity and a deep ResNet's activations grow block after block. To study a net "at
    initialisation" as the papers do (Balduzzi et al. use BN with batch statistics), analyse
    `calibrate_bn(model, images)` — a copy whose running statistics are measured on the images;
    `bn_never_updated(model)` tells whether a model needs it.
"""
from .branch import branch_ratios
from .common import (ACCELERATOR_BUDGET_GMACS, CPU_BUDGET_GMACS, MIN_IMAGES, bn_never_updated, budget_subset,
                     calibrate_bn, evaluate, images_for_budget, macs_per_image)
from .dead_relus import dead_relus
from .landscape import loss_landscape_1d, loss_landscape_2d, random_direction
from .lesion import NOT_REMOVABLE, lesion_random, lesion_random_images, lesion_single, lesioned_logits
from .probes import branch_ratio_names, branch_ratio_probe
from .response import response_std
from .shattering import gradient_shattering

__all__ = ["response_std", "branch_ratios", "branch_ratio_probe", "branch_ratio_names", "lesion_single",
           "lesion_random", "lesion_random_images", "lesioned_logits", "random_direction", "loss_landscape_1d",
           "loss_landscape_2d",
           "gradient_shattering", "dead_relus", "evaluate", "calibrate_bn", "bn_never_updated", "macs_per_image",
           "images_for_budget", "budget_subset",
           "CPU_BUDGET_GMACS", "ACCELERATOR_BUDGET_GMACS", "MIN_IMAGES", "NOT_REMOVABLE"]
