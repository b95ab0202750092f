"""Admin forms that offer the registered features as choices."""

from django import forms

from .models import CompanyPermission, ContactPermission, GlobalFeature
from .permissions import FEATURES


def feature_field() -> forms.ChoiceField:
    return forms.ChoiceField(choices=list(FEATURES.items()))


class GlobalFeatureForm(forms.ModelForm):
    feature = feature_field()

    class Meta:
        model = GlobalFeature
        fields = ["feature", "enabled"]


class CompanyPermissionForm(forms.ModelForm):
    feature = feature_field()

    class Meta:
        model = CompanyPermission
        fields = ["feature", "access"]


class ContactPermissionForm(forms.ModelForm):
    feature = feature_field()

    class Meta:
        model = ContactPermission
        fields = ["feature", "access"]
