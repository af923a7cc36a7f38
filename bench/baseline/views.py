"""The baseline request: a ModelSerializer behind a CreateAPIView, nothing else.

No authentication, permission or throttle classes: what is left is Django's middleware, DRF's
request/response cycle, one validated INSERT and its JSON answer.
"""

from rest_framework import serializers
from rest_framework.generics import CreateAPIView
from rest_framework.permissions import AllowAny

from .models import BaselineItem


class BaselineItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaselineItem
        fields = ["id", "label", "quantity", "created_at"]
        read_only_fields = ["id", "created_at"]


class BaselineItemCreateApi(CreateAPIView):
    serializer_class = BaselineItemSerializer
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []
