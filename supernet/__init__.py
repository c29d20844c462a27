"""The elastic OFA supernets (MobileNetV3; ProxylessNAS and ResNet50 too): elastic layers, subnet extraction,
progressive shrinking, accuracy data.

Public surface::

    from supernet import OFAMobileNetV3
    net = OFAMobileNetV3(width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    net.load_state_dict(ofa_state_dict)            # OFA's keys, strict
    net.set_active_subnet({"ks": [...], "e": [...], "d": [...], "r": 224})
    static = net.get_active_subnet()               # plain nn.Module, same outputs in eval mode

    OFAProxylessNASNets(width_mult=1.3)            # arch {"ks": [21], "e": [21], "d": [6], "r"}
    OFAResNets()                                   # arch {"d": [5], "e": [18], "w": [6], "r"}

Names load on first use (PEP 562): importing a torch-free part such as ``supernet.presets`` (the
command line does, to show its defaults) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module defining it.
_EXPORTS = {
    "CSV_COLUMNS": "supernet.collect",
    "CheckpointError": "supernet.checkpoint",
    "DIGITS": "supernet.data",
    "DIGITS_PRESET": "supernet.presets",
    "DIGITS_PRESETS": "supernet.presets",
    "DynamicBatchNorm2d": "supernet.elastic_layers",
    "DynamicConv2d": "supernet.elastic_layers",
    "DynamicMBConvLayer": "supernet.elastic_layers",
    "DynamicSE": "supernet.elastic_layers",
    "DynamicSeparableConv2d": "supernet.elastic_layers",
    "ImageDataset": "supernet.data",
    "MobileNetV3": "supernet.static_subnet",
    "OFAMobileNetV3": "supernet.ofa_mbv3",
    "OFAProxylessNASNets": "supernet.ofa_proxyless",
    "OFAResNets": "supernet.ofa_resnet",
    "Phase": "supernet.train",
    "ProxylessNASNets": "supernet.static_proxyless",
    "ProxylessSupernetConfig": "supernet.ofa_proxyless",
    "ResNetSupernetConfig": "supernet.ofa_resnet",
    "ResNets": "supernet.static_resnet",
    "SmallDataPreset": "supernet.presets",
    "SubnetResult": "supernet.evaluate",
    "SupernetCheckpoint": "supernet.checkpoint",
    "SupernetConfig": "supernet.ofa_mbv3",
    "TrainConfig": "supernet.train",
    "TrainEvent": "supernet.train",
    "TrainResult": "supernet.train",
    "build_supernet": "supernet.factory",
    "calibrated_subnet": "supernet.evaluate",
    "collect_accuracy_data": "supernet.collect",
    "count_module_macs": "supernet.complexity",
    "count_parameters": "supernet.complexity",
    "digits_preset": "supernet.presets",
    "evaluate_subnet": "supernet.evaluate",
    "iter_batches": "supernet.data",
    "load_checkpoint": "supernet.checkpoint",
    "load_dataset": "supernet.data",
    "load_digits_dataset": "supernet.data",
    "load_image_folder": "supernet.data",
    "load_subnet": "supernet.static_subnet",
    "load_supernet": "supernet.checkpoint",
    "preset_supernet": "supernet.factory",
    "progressive_shrinking_phases": "supernet.train",
    "read_accuracy_csv": "supernet.collect",
    "recalibrate_bn": "supernet.bn_calibration",
    "sample_all_phases": "supernet.train",
    "sample_stratified_archs": "supernet.collect",
    "save_checkpoint": "supernet.checkpoint",
    "save_subnet": "supernet.static_subnet",
    "search_space_name": "supernet.collect",
    "split_dataset": "supernet.data",
    "subnet_complexity": "supernet.complexity",
    "top1_accuracy": "supernet.evaluate",
    "train_supernet": "supernet.train",
    "write_accuracy_csv": "supernet.collect",
}

__all__ = [
    "CSV_COLUMNS",
    "DIGITS",
    "DIGITS_PRESET",
    "DIGITS_PRESETS",
    "CheckpointError",
    "DynamicBatchNorm2d",
    "DynamicConv2d",
    "DynamicMBConvLayer",
    "DynamicSE",
    "DynamicSeparableConv2d",
    "ImageDataset",
    "MobileNetV3",
    "OFAMobileNetV3",
    "OFAProxylessNASNets",
    "OFAResNets",
    "Phase",
    "ProxylessNASNets",
    "ProxylessSupernetConfig",
    "ResNetSupernetConfig",
    "ResNets",
    "SmallDataPreset",
    "SubnetResult",
    "SupernetCheckpoint",
    "SupernetConfig",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "build_supernet",
    "calibrated_subnet",
    "collect_accuracy_data",
    "count_module_macs",
    "count_parameters",
    "digits_preset",
    "evaluate_subnet",
    "iter_batches",
    "load_checkpoint",
    "load_dataset",
    "load_digits_dataset",
    "load_image_folder",
    "load_subnet",
    "load_supernet",
    "preset_supernet",
    "progressive_shrinking_phases",
    "read_accuracy_csv",
    "recalibrate_bn",
    "sample_all_phases",
    "sample_stratified_archs",
    "save_checkpoint",
    "save_subnet",
    "search_space_name",
    "split_dataset",
    "subnet_complexity",
    "top1_accuracy",
    "train_supernet",
    "write_accuracy_csv",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'supernet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
