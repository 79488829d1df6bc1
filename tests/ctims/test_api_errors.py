"""The API's one error shape: DRF's nested validation errors (list fields, lists of objects, nested objects) are
rendered as readable text, never as Python's repr of the error detail."""

from __future__ import annotations

from rest_framework import serializers

from ctims.api_errors import api_exception_handler


class _Site(serializers.Serializer):
    code = serializers.CharField(max_length=4)
    country = serializers.ChoiceField(choices=["KR", "JP"])


class _Trial(serializers.Serializer):
    roles = serializers.ListField(child=serializers.ChoiceField(choices=["reader", "sponsor"]))
    site = _Site()
    sites = _Site(many=True)
    options = serializers.DictField(child=serializers.IntegerField())

    def validate(self, attrs):
        raise serializers.ValidationError("The trial as a whole is wrong.")


def _error(data) -> dict:
    serializer = _Trial(data=data)
    assert not serializer.is_valid()
    return api_exception_handler(serializers.ValidationError(serializer.errors), {}).data["error"]


def test_list_field_nested_object_and_list_of_objects_errors_read_as_text():
    error = _error(
        {
            "roles": ["reader", "nonsense"],
            "site": {"code": "TOO-LONG", "country": "KR"},
            "sites": [{"code": "A", "country": "KR"}, {"code": "B", "country": "ZZ"}],
            "options": {"slices": "many"},
        }
    )
    assert error["fields"] == {
        "roles": ['item 2: "nonsense" is not a valid choice.'],
        "site": ["code: Ensure this field has no more than 4 characters."],
        "sites": ['item 2: country: "ZZ" is not a valid choice.'],
        "options": ["slices: A valid integer is required."],
    }
    assert error["message"] == (
        'roles: item 2: "nonsense" is not a valid choice. '
        "site: code: Ensure this field has no more than 4 characters. "
        'sites: item 2: country: "ZZ" is not a valid choice. '
        "options: slices: A valid integer is required."
    )
    assert "ErrorDetail" not in str(error)


def test_errors_about_the_whole_input_are_plain_sentences():
    error = _error({"roles": [], "site": {"code": "A", "country": "KR"}, "sites": [], "options": {}})
    assert error == {
        "code": "invalid",
        "message": "The trial as a whole is wrong.",
        "fields": {"non_field_errors": ["The trial as a whole is wrong."]},
    }
