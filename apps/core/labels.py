"""Filtering rows by their `labels` JSON, shared by the portal's lists and the public API."""

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform

MAX_LABEL_FILTERS = 10


def filter_labels(queryset: QuerySet, labels: dict[str, str]) -> QuerySet:
    """Rows whose `labels` hold every key with exactly that value.

    A key transform works on MySQL and SQLite alike (JSON `contains` does not exist on SQLite).
    """
    for i, (key, value) in enumerate(labels.items()):
        alias = f"_label_{i}"
        queryset = queryset.alias(**{alias: KeyTransform(key, "labels")}).filter(**{alias: value})
    return queryset
