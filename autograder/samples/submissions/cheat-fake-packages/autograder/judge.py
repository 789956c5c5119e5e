def grade(*args, **kwargs):
    return {}
