"""Template context: the signed-in principal, shown on every page with its role."""


def portal(request):
    return {"principal": getattr(request, "principal", None)}
