"""The monai 0.1.0 transforms named by ``example_algos/data/numpy_dataset.py``. Only its
training loader builds them (current monai has no ``AddChannel``); the compared
``predict`` run never does, so building one here is an error."""


class _TrainingOnly:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"monai.{type(self).__name__}: training only; not in the shim")


class AddChannel(_TrainingOnly): ...


class Compose(_TrainingOnly): ...


class Resize(_TrainingOnly): ...


class ScaleIntensity(_TrainingOnly): ...


class ToTensor(_TrainingOnly): ...
