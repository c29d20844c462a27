"""The elastic OFA-MobileNetV3 supernet: elastic layers, subnet extraction, progressive shrinking, accuracy data.

Public surface::

    from supernet import OFAMobileNetV3
    net = OFAMobileNetV3(width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    net.load_state_dict(ofa_state_dict)            # OFA's keys, strict
    net.set_active_subnet({"ks": [...], "e": [...], "d": [...], "r": 224})
    static = net.get_active_subnet()               # plain nn.Module, same outputs in eval mode
"""

from supernet.bn_calibration import recalibrate_bn
from supernet.checkpoint import (
    CheckpointError,
    SupernetCheckpoint,
    load_checkpoint,
    load_supernet,
    save_checkpoint,
)
from supernet.collect import (
    CSV_COLUMNS,
    collect_accuracy_data,
    read_accuracy_csv,
    sample_stratified_archs,
    write_accuracy_csv,
)
from supernet.complexity import count_module_macs, count_parameters, subnet_complexity
from supernet.data import (
    DIGITS,
    ImageDataset,
    iter_batches,
    load_dataset,
    load_digits_dataset,
    load_image_folder,
    split_dataset,
)
from supernet.elastic_layers import (
    DynamicBatchNorm2d,
    DynamicConv2d,
    DynamicMBConvLayer,
    DynamicSE,
    DynamicSeparableConv2d,
)
from supernet.evaluate import SubnetResult, calibrated_subnet, evaluate_subnet, top1_accuracy
from supernet.ofa_mbv3 import OFAMobileNetV3, SupernetConfig
from supernet.presets import DIGITS_PRESET, SmallDataPreset
from supernet.static_subnet import MobileNetV3, load_subnet, save_subnet
from supernet.train import (
    Phase,
    TrainConfig,
    TrainEvent,
    TrainResult,
    progressive_shrinking_phases,
    sample_all_phases,
    train_supernet,
)

__all__ = [
    "CSV_COLUMNS",
    "DIGITS",
    "DIGITS_PRESET",
    "CheckpointError",
    "DynamicBatchNorm2d",
    "DynamicConv2d",
    "DynamicMBConvLayer",
    "DynamicSE",
    "DynamicSeparableConv2d",
    "ImageDataset",
    "MobileNetV3",
    "OFAMobileNetV3",
    "Phase",
    "SmallDataPreset",
    "SubnetResult",
    "SupernetCheckpoint",
    "SupernetConfig",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "calibrated_subnet",
    "collect_accuracy_data",
    "count_module_macs",
    "count_parameters",
    "evaluate_subnet",
    "iter_batches",
    "load_checkpoint",
    "load_dataset",
    "load_digits_dataset",
    "load_image_folder",
    "load_subnet",
    "load_supernet",
    "progressive_shrinking_phases",
    "read_accuracy_csv",
    "recalibrate_bn",
    "sample_all_phases",
    "sample_stratified_archs",
    "save_checkpoint",
    "save_subnet",
    "split_dataset",
    "subnet_complexity",
    "top1_accuracy",
    "train_supernet",
    "write_accuracy_csv",
]
