"""Checks for notebook 07 (exercises and the interview deep-dive), one module per concern.

* ``pooling_variants.py``, ``pooling_stochastic.py``: mixed, LP and stochastic pooling (section 1);
* ``resnet_variants.py``, ``resnet_grouped.py``: the pre-activation block, the grouped
  bottleneck, the ResNet builder with ``groups`` and ``width_per_group`` (section 2);
* ``receptive_field.py``: ``compute_receptive_field`` (section 3);
* ``drill.py``: the numeric drill (section 5).

This module is the notebook's entry point: it re-exports the checks the
notebook calls, and ``helpers.checks`` re-exports them from here.
"""
from .drill import (check_drill_bottleneck_parameters, check_drill_grouped_macs, check_drill_output_size,
                    check_drill_receptive_field)
from .pooling_stochastic import check_stochastic_pooling
from .pooling_variants import check_lp_pooling, check_mixed_pooling
from .receptive_field import check_compute_receptive_field
from .resnet_grouped import check_grouped_resnet
from .resnet_variants import check_grouped_bottleneck, check_preact_residual_block

__all__ = [
    "check_mixed_pooling", "check_stochastic_pooling", "check_lp_pooling",
    "check_preact_residual_block", "check_grouped_bottleneck", "check_grouped_resnet",
    "check_compute_receptive_field",
    "check_drill_bottleneck_parameters", "check_drill_output_size", "check_drill_receptive_field",
    "check_drill_grouped_macs",
]
