"""The command line (`python -m resnet_viz …`): cli.py parses and dispatches; training.py trains runs and prints
their progress (one Ctrl-C handler); lecture.py the presets and lecture packs; gradients.py the step-0 gradient view."""
