"""trixi.util.config.monkey_patch_fn_args_as_config: the call's bound arguments as the
global ``fn_args_as_config`` while the decorated function runs (as trixi does)."""

import inspect
from functools import wraps


def monkey_patch_fn_args_as_config(f):
    sig = inspect.signature(f)

    @wraps(f)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        f.__globals__["fn_args_as_config"] = dict(bound.arguments)
        try:
            return f(*args, **kwargs)
        finally:
            del f.__globals__["fn_args_as_config"]

    return wrapper
