"""Training multi-state models: config, data preparation, loss, metrics, resumable trainer.

``fusionff train CONFIG.yaml`` or, from Python::

    from fusionff.train import TrainConfig, Trainer
    result = Trainer(TrainConfig.from_yaml("data/examples/train_tiny.yaml")).fit()
    print(format_metrics(result.test_metrics, "test split"))
"""

from fusionff.train.config import ConfigError, TrainConfig
from fusionff.train.data import TrainingData, load_training_data
from fusionff.train.evaluate import evaluate
from fusionff.train.metrics import compute_metrics, format_metrics
from fusionff.train.trainer import Trainer, TrainResult

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingData",
    "compute_metrics",
    "evaluate",
    "format_metrics",
    "load_training_data",
]
