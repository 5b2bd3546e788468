from .config import ModelConfig, TrainConfig, RunConfig
from .errors import ResnetVizError, ConfigError, DataError, ImageError, RunStoreError

__version__ = "0.1.0"
