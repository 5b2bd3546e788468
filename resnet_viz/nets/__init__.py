"""The nets: a plain network and its residual twin, built from one config.

- models.py — the CIFAR 6n+2 nets (option A/B/C shortcuts) and the ImageNet-style ResNet-18…152 in one `ResNet`
  class, a plain net being exactly its twin minus the shortcuts; every ReLU its own module, so hooks see it.
- summary.py — a model described without building it for real (per-layer shapes, parameters, FLOPs on the meta
  device) and whether one training step fits the device's memory.
"""
