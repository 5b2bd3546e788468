"""The lecture's experiments: presets sized to the minutes you have (presets.py) and the one rule for whether a net
"learned" that every page's text uses (learning.py)."""
