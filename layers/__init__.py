"""The torch building blocks of OFA's networks (MobileNetV3, ProxylessNAS, ResNet50), defined once, with
OFA's state_dict key layout.

The profiler builds the blocks it times and whole subnets from these layers; the supernet's fixed layers and
the static subnets it extracts are made of them too, so an extracted subnet is exported exactly like the
blocks in its LUT. Imports only ``space`` and torch.
"""

from layers.activations import ACTIVATIONS, HSigmoid, HSwish, make_act
from layers.bottleneck import DOWNSAMPLE_MODES, Bottleneck
from layers.chain import SubnetModel, block_input_shape, block_output_shape, module_output_shape
from layers.conv import ConvBNAct, MBConv, ResidualBlock, SqueezeExcite, fold_conv_bn, same_padding
from layers.head import Classifier, GlobalAvgPool, global_avg_pool
from layers.pool import MaxPool

__all__ = [
    "ACTIVATIONS",
    "DOWNSAMPLE_MODES",
    "Bottleneck",
    "Classifier",
    "ConvBNAct",
    "GlobalAvgPool",
    "HSigmoid",
    "HSwish",
    "MBConv",
    "MaxPool",
    "ResidualBlock",
    "SqueezeExcite",
    "SubnetModel",
    "block_input_shape",
    "block_output_shape",
    "fold_conv_bn",
    "global_avg_pool",
    "make_act",
    "module_output_shape",
    "same_padding",
]
