"""Plotly figures for the app: data in, figure out. No Streamlit and no torch — importing this package never loads
torch, so the figures can be drawn wherever the numbers are (pages, notebooks, docs).

    style           palette, font, base layout, the colour of each run, `for_projector` (presentation mode)
    runs            the typed inputs: RunSeries (a training run), AnalysisSeries (one model's analysis result)
    numerics        smoothing, thinning, log scales, gradient ratios, learning-rate drops, evaluation-loss spikes
    curves          loss and error during training, the paper's Fig. 6, and why an evaluation loss spikes
    gradients       gradient-norm heatmap, depth profiles, first/last ratio, and the finding in words
    init_gradients  the step-0 depth profile of a plain net and its ResNet twin over a few seeds, and its finding
    summary         a model summary's layer table and totals
    architecture    the block diagram of a model, from its summary
    residual_block  the identity and convolutional blocks side by side
    analyses        the six analyses of `resnet_viz.analyses`
    analysis_findings  what the shattered-gradients and dead-ReLU results say, in numbers and sentences

Pages use the package as one namespace: `from resnet_viz import figures` then `figures.training_curves(...)`.
"""
from .analyses import (SHATTER_VIEWS, branch_ratio_figure, branch_ratio_training_figure, dead_relu_figure,
                       landscape_1d_figure, landscape_2d_figure, lesion_random_figure, lesion_single_figure,
                       no_data_figure, response_std_figure, shattering_figure)
from .analysis_findings import SHATTER_MEASURES, dead_relu_takeaway, shattering_headline, shattering_numbers
from .architecture import (AUTO_COLLAPSE_BLOCKS, MAX_EXPANDED_BLOCKS, architecture_diagram, architecture_layout,
                           auto_collapsed_stages, stage_names)
from .curves import eval_spike_note, fig6_error_curves, training_curves
from .init_gradients import init_gradient_finding, init_gradient_profile
from .gradients import (RATIO_DEFINITION, first_last_ratio_figure, format_ratio, grad_norm_heatmap, grad_norm_profiles,
                        gradient_flow_finding)
from .numerics import (MAX_LINE_POINTS, downsample_log_columns, ema, eval_loss_spike, first_last_ratio, last_conv_index,
                       log10_safe, log_ticks, lr_drop_steps, readable, shared_color_range, spans_decades)
from .residual_block import residual_block_diagram
from .runs import AnalysisSeries, RunSeries
from .style import PLAIN_COLOR, PRESENTATION_SCALE, RESIDUAL_COLOR, for_projector, run_colors
from .summary import is_weight_layer, summary_table, summary_table_figure, summary_totals

__all__ = [
    "RunSeries", "AnalysisSeries", "run_colors", "PLAIN_COLOR", "RESIDUAL_COLOR", "for_projector", "PRESENTATION_SCALE",
    "ema", "log10_safe", "downsample_log_columns", "shared_color_range", "log_ticks", "last_conv_index",
    "first_last_ratio", "spans_decades", "lr_drop_steps", "readable", "MAX_LINE_POINTS",
    "training_curves", "fig6_error_curves", "eval_spike_note", "eval_loss_spike",
    "grad_norm_heatmap", "grad_norm_profiles", "first_last_ratio_figure", "gradient_flow_finding", "format_ratio",
    "RATIO_DEFINITION", "init_gradient_profile", "init_gradient_finding",
    "summary_table", "summary_totals", "summary_table_figure", "is_weight_layer",
    "architecture_layout", "architecture_diagram", "auto_collapsed_stages", "stage_names", "AUTO_COLLAPSE_BLOCKS",
    "MAX_EXPANDED_BLOCKS",
    "residual_block_diagram",
    "response_std_figure", "branch_ratio_figure", "branch_ratio_training_figure", "lesion_single_figure",
    "lesion_random_figure", "landscape_1d_figure", "landscape_2d_figure", "shattering_figure", "SHATTER_VIEWS",
    "dead_relu_figure", "no_data_figure",
    "dead_relu_takeaway", "shattering_numbers", "shattering_headline", "SHATTER_MEASURES",
]
