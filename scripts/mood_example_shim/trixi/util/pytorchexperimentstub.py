"""trixi.util.pytorchexperimentstub.PytorchExperimentStub without its loggers: image
grids, results and prints are dropped (the timed run plots nothing)."""

import os


class _NoLogger:
    def __init__(self, work_dir):
        self.work_dir = work_dir

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class PytorchExperimentStub(_NoLogger):
    def __init__(self, name=None, base_dir=None, config=None, loggers=None, **kwargs):
        super().__init__(os.path.join(base_dir or ".", name or "experiment"))
        self.elog = _NoLogger(self.work_dir)
        self.l = {key: _NoLogger(self.work_dir) for key in (loggers or {})}
