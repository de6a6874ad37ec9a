"""Training multi-state models: config, data preparation, loss, metrics, resumable trainer.

``fusionff train CONFIG.yaml`` or, from Python::

    from fusionff.train import TrainConfig, Trainer
    result = Trainer(TrainConfig.from_yaml("data/examples/train_tiny.yaml")).fit()
    print(format_metrics(result.test_metrics, "test split"))
"""

from fusionff._lazy import lazy_exports

_EXPORTS = {
    "ConfigError": "fusionff.train.config",
    "TrainConfig": "fusionff.train.config",
    "TrainingData": "fusionff.train.data",
    "load_training_data": "fusionff.train.data",
    "evaluate": "fusionff.train.evaluate",
    "compute_metrics": "fusionff.train.metrics",
    "format_metrics": "fusionff.train.metrics",
    "Trainer": "fusionff.train.trainer",
    "TrainResult": "fusionff.train.trainer",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("fusionff.train", _EXPORTS)
