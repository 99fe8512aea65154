"""trixi.logger.PytorchExperimentLogger, reduced to loading a model's weights."""

import torch


class PytorchExperimentLogger:
    @staticmethod
    def load_model_static(model, model_file):
        model.load_state_dict(torch.load(model_file, map_location="cpu"))
