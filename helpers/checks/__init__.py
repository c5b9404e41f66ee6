"""Instant-feedback checks, one module per notebook.

Each ``check_*`` function prints one short line when the answer is right and
raises :class:`CheckFailed` (expected, got, hint) when it is not.
"""
from .core import CheckFailed
from .pooling import (check_avg_pool_2d, check_avg_pool_2d_vectorized,
                      check_global_average_pooling, check_max_pool_2d,
                      check_max_pool_2d_backward, check_max_pool_2d_vectorized)
from .resnet import check_cifar_resnet, check_resnet, check_resnet_factories
from .resnet_blocks import check_bottleneck_block, check_residual_block
from .shape_tracer import check_trace_shapes
from .stride import check_compute_network_sizes, check_compute_output_size
from .models import check_matches_torchvision, check_parameter_count
from .vgg import check_vgg, check_vgg16, check_vgg_block
# 05: efficientnet imports go here
from .efficientnet import check_compound_scaling, check_efficientnet
from .efficientnet_blocks import check_depthwise_separable_conv, check_squeeze_excitation
from .efficientnet_mbconv import check_mbconv_block
# 06: design imports go here
from .design import check_conv_bn_relu
from .design_blocks import check_modern_block
from .design_network import check_challenge_model, check_modern_cnn
# 07: exercises imports go here
from .exercises import (check_compute_receptive_field, check_drill_bottleneck_parameters,
                        check_drill_grouped_macs, check_drill_output_size, check_drill_receptive_field,
                        check_grouped_bottleneck, check_grouped_resnet, check_lp_pooling, check_mixed_pooling,
                        check_preact_residual_block, check_stochastic_pooling)

__all__ = [
    "CheckFailed",
    "check_max_pool_2d", "check_avg_pool_2d",
    "check_max_pool_2d_vectorized", "check_avg_pool_2d_vectorized",
    "check_max_pool_2d_backward",
    "check_global_average_pooling",
    "check_compute_output_size", "check_compute_network_sizes", "check_trace_shapes",
    "check_vgg_block", "check_vgg", "check_vgg16",
    "check_parameter_count", "check_matches_torchvision",
    "check_residual_block", "check_bottleneck_block", "check_resnet", "check_resnet_factories",
    "check_cifar_resnet",
    # 05: efficientnet names go here
    "check_depthwise_separable_conv", "check_squeeze_excitation", "check_mbconv_block", "check_efficientnet",
    "check_compound_scaling",
    # 06: design names go here
    "check_conv_bn_relu", "check_modern_block", "check_modern_cnn", "check_challenge_model",
    # 07: exercises names go here
    "check_mixed_pooling", "check_stochastic_pooling", "check_lp_pooling",
    "check_preact_residual_block", "check_grouped_bottleneck", "check_grouped_resnet",
    "check_compute_receptive_field",
    "check_drill_bottleneck_parameters", "check_drill_output_size", "check_drill_receptive_field",
    "check_drill_grouped_macs",
]
