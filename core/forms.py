from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from core.markdown import MAX_MARKDOWN_CHARS
from core.models import (
    Change,
    ExternalIssueMapping,
    Item,
    ItemComment,
    ItemStatus,
    ItemType,
    Node,
    Organisation,
    Project,
    ProjectStatus,
    Release,
)
from core.services.index.context import MAX_SEARCH_PAGE

MAX_QUERY_LENGTH = 200
# Item descriptions and comments may be this long. They are Markdown, rendered
# up to MAX_MARKDOWN_CHARS (longer text is shown as plain text, and cannot be
# previewed) and indexed up to AGIRA_INDEX_MAX_TEXT_CHARS (100,000 by default,
# cut beyond): at this limit everything accepted is rendered, previewable and
# searchable whole. A long description is a few thousand characters; a log
# or a dump belongs in an attachment. DATA_UPLOAD_MAX_MEMORY_SIZE (settings)
# is far above the longest form this allows, so an over-long text reaches the
# form and comes back with an error instead of a bare 400 page.
MAX_TEXT_CHARS = MAX_MARKDOWN_CHARS


class BootstrapMixin:
    """Gives every widget Bootstrap's classes, and marks fields with errors."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()


def validate_text_length(value: str) -> None:
    if len(value) > MAX_TEXT_CHARS:
        raise forms.ValidationError(
            f"This text is {len(value):,} characters long; the limit is {MAX_TEXT_CHARS:,}. "
            "Shorten it, or put the long part in an attachment on the item.",
            code="max_length",
        )


class MarkdownFieldsMixin:
    """Limits the Markdown fields (`markdown_fields`) to MAX_TEXT_CHARS and says
    so in their help text.

    A validator rather than `max_length`, which would add a `maxlength`
    attribute: the browser would then cut a long paste short without a word,
    where the server's error gives the whole text back.
    """

    markdown_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.markdown_fields:
            field = self.fields[name]
            field.validators.append(validate_text_length)
            field.help_text = f"Up to {MAX_TEXT_CHARS:,} characters."


class ProjectForm(BootstrapMixin, forms.ModelForm):
    class Meta:
        model = Project
        fields = ["organisation", "name", "status", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 6})}


class ItemForm(MarkdownFieldsMixin, BootstrapMixin, forms.ModelForm):
    # Written in Markdown: the form shows Write / Preview tabs for these.
    markdown_fields = ("description",)

    class Meta:
        model = Item
        fields = ["project", "title", "type", "status", "assignee", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 12})}
        # Form CharFields strip whitespace, so "   " is empty too.
        error_messages = {"title": {"required": "A title is required."}}


class CommentForm(MarkdownFieldsMixin, BootstrapMixin, forms.ModelForm):
    markdown_fields = ("body",)

    class Meta:
        model = ItemComment
        fields = ["body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 3, "placeholder": "Write a comment"})}
        labels = {"body": "Comment"}
        error_messages = {"body": {"required": "A comment cannot be empty."}}


class AttachmentForm(BootstrapMixin, forms.Form):
    file = forms.FileField()

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.AGIRA_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"{upload.name} is {filesizeformat(upload.size)}; "
                f"attachments may be at most {filesizeformat(limit)}."
            )
        return upload


class OwnedModelForm(BootstrapMixin, forms.ModelForm):
    """A form for a record whose owner (a project, an item) comes from the URL.

    The owner is not a form field, so Django would leave it out of the unique
    checks and a duplicate would reach the database as an IntegrityError;
    validating it as well turns that into a form error.
    """

    # Fields set by the view rather than the user, validated all the same.
    owned_fields: tuple[str, ...] = ()

    def _get_validation_exclusions(self):
        return super()._get_validation_exclusions() - set(self.owned_fields)


class ProjectChildForm(OwnedModelForm):
    owned_fields = ("project",)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.project = project


class NodeForm(ProjectChildForm):
    class Meta:
        model = Node
        fields = ["name", "type", "parent", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, project=project, **kwargs)
        parents = Node.objects.filter(project=project)
        if self.instance.pk:
            parents = parents.exclude(pk=self.instance.pk)
        self.fields["parent"].queryset = parents


class ReleaseForm(ProjectChildForm):
    class Meta:
        model = Release
        fields = ["version", "status", "planned_date", "released_date", "notes"]
        widgets = {
            "planned_date": forms.DateInput(attrs={"type": "date"}),
            "released_date": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(attrs={"rows": 4}),
        }


class ChangeForm(ProjectChildForm):
    class Meta:
        model = Change
        fields = ["title", "status", "risk", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 6})}


class GitHubLinkForm(OwnedModelForm):
    owned_fields = ("item", "provider")

    class Meta:
        model = ExternalIssueMapping
        fields = ["repository", "number", "kind"]
        labels = {"repository": "Repository (owner/name)", "number": "Issue or PR number"}

    def __init__(self, *args, item: Item, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.item = item

    def clean_repository(self) -> str:
        # GitHub names are case-insensitive; one spelling keeps links unique.
        repository = self.cleaned_data["repository"].strip().strip("/").lower()
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise forms.ValidationError("Write the repository as owner/name.")
        return repository

    def save(self, commit: bool = True) -> ExternalIssueMapping:
        mapping = super().save(commit=False)
        path = "issues" if mapping.kind == "issue" else "pull"
        mapping.url = f"https://github.com/{mapping.repository}/{path}/{mapping.number}"
        if commit:
            mapping.save()
        return mapping


def _with_any(choices, label: str = "Any"):
    return [("", label), *choices]


class ProjectFilterForm(BootstrapMixin, forms.Form):
    organisation = forms.ModelChoiceField(
        queryset=Organisation.objects.all(), required=False, empty_label="All organisations"
    )
    status = forms.ChoiceField(
        choices=_with_any(ProjectStatus.choices, "All statuses"), required=False
    )


class ItemFilterForm(BootstrapMixin, forms.Form):
    q = forms.CharField(required=False, max_length=MAX_QUERY_LENGTH, label="Text")
    project = forms.ModelChoiceField(
        queryset=Project.objects.all(), required=False, empty_label="All projects"
    )
    status = forms.ChoiceField(
        choices=_with_any(ItemStatus.choices, "All statuses"), required=False
    )
    type = forms.ChoiceField(choices=_with_any(ItemType.choices, "All types"), required=False)


def _status_choices() -> list[tuple[str, str]]:
    """Every status any indexed object can have, once each."""
    from core.models import ChangeStatus, ReleaseStatus

    seen: dict[str, str] = {}
    for choices in (ItemStatus, ProjectStatus, ChangeStatus, ReleaseStatus):
        for value, label in choices.choices:
            seen.setdefault(value, label)
    seen.setdefault("open", "open (GitHub)")
    seen.setdefault("closed", "closed (GitHub)")
    return list(seen.items())


class SearchForm(BootstrapMixin, forms.Form):
    OBJECT_TYPES = [
        ("item", "Item"),
        ("comment", "Comment"),
        ("attachment", "Attachment"),
        ("project", "Project"),
        ("change", "Change"),
        ("node", "Node"),
        ("release", "Release"),
        ("github_issue", "GitHub issue"),
        ("github_pr", "GitHub pull request"),
    ]

    q = forms.CharField(
        label="Search",
        max_length=MAX_QUERY_LENGTH,
        error_messages={
            "required": "Type a word or two to search for.",
            "max_length": f"Searches are limited to {MAX_QUERY_LENGTH} characters.",
        },
    )
    type = forms.ChoiceField(choices=_with_any(OBJECT_TYPES, "All types"), required=False)
    project = forms.ModelChoiceField(
        queryset=Project.objects.all(), required=False, empty_label="All projects"
    )
    status = forms.ChoiceField(choices=[], required=False)
    mode = forms.ChoiceField(
        choices=[("hybrid", "Hybrid"), ("keyword", "Keyword"), ("semantic", "Semantic")],
        required=False,
        help_text="Keyword ranks by the words, semantic by meaning, hybrid by both.",
    )
    page = forms.IntegerField(
        min_value=1,
        max_value=MAX_SEARCH_PAGE,
        required=False,
        error_messages={
            "max_value": f"Only the first {MAX_SEARCH_PAGE} pages can be shown: narrow the search."
        },
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = _with_any(_status_choices(), "All statuses")
