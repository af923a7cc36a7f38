"""One table, no foreign keys, no triggers, no row-level security, no audit."""

from django.db import models


class BaselineItem(models.Model):
    label = models.CharField(max_length=100)
    quantity = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.label
