"""Forms: field rules and messages in one place (Flask-WTF adds CSRF to every POST form)."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (BooleanField, DateField, DecimalField, EmailField, IntegerField, PasswordField, RadioField,
                     SelectChoice, SelectField, SelectMultipleField, StringField, TextAreaField, TimeField)
from wtforms.utils import unset_value
from wtforms.widgets import CheckboxInput, ListWidget
from wtforms.validators import (AnyOf, DataRequired, Email, EqualTo, InputRequired, Length, NumberRange, Optional,
                                ValidationError)

from ..realtime.live import browser_zone
from ..services import reviews as review_rules
from ..services import time_zones
from ..services.search import LANGUAGES, SORTS



def options(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms choices."""
    return [SelectChoice(value, label) for value, label in pairs]


LANGUAGE_CHOICES = options(sorted(LANGUAGES.items(), key=lambda kv: kv[1]))
MAX_PRICE_DOLLARS = 10_000
PRICE_INPUT = {"type": "number", "min": 0, "max": MAX_PRICE_DOLLARS, "step": "any", "inputmode": "decimal"}


class AmountField(DecimalField):
    """A decimal amount: NaN, sNaN and Infinity parse as Decimals but break every comparison
    (NumberRange's included), so they are refused as not a number."""

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None and not self.data.is_finite():
            self.data = None
            raise ValueError(self.gettext("Not a valid decimal value."))


def valid_time_zone(form, field) -> None:
    if not (time_zones.is_zone(field.data) or (field.data == "" and getattr(field, "automatic", None))):
        raise ValidationError("Choose a time zone from the list.")


class TimeZoneField(SelectField):
    """Every zone people pick from (services/time_zones.places), grouped by region, each labelled
    city first ("Tokyo — Japan · UTC+9") so typing a city's name in the closed select finds it.
    Any real IANA zone is accepted (a browser may report an old alias); anything else is refused.
    `automatic`: the label of a first, empty choice ("" = decided elsewhere, e.g. the browser's)."""

    def __init__(self, label="Time zone", validators=(), automatic: str | None = None, **kwargs):
        super().__init__(label, [valid_time_zone, *validators], choices=[], validate_choice=False, **kwargs)
        self.automatic = automatic

    def process(self, formdata, data=unset_value, extra_filters=None):
        super().process(formdata, data, extra_filters)
        # Built now, with the value known: a valid zone not on the list stays selectable.
        listed = time_zones.places(include=self.data if isinstance(self.data, str) else None)
        first = [SelectChoice("", self.automatic)] if self.automatic else []
        self.choices = first + [SelectChoice(place.zone, place.label, optgroup=place.region or None)
                                for place in listed]


def _stripped(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=200)])
    remember = BooleanField("Keep me logged in on this device")


class SignupForm(FlaskForm):
    name = StringField("Your name", validators=[DataRequired("Enter your name."),
                                                Length(min=2, max=80, message="Use 2 to 80 characters.")])
    email = EmailField("Email", validators=[DataRequired("Enter your email."),
                                            Length(max=254, message="Use at most 254 characters."),
                                            Email("Enter a valid email address, like name@example.com.",
                                                  check_deliverability=False)])
    password = PasswordField("Password", validators=[
        DataRequired("Choose a password."),
        Length(min=10, max=200, message="Use at least 10 characters (at most 200)."),
    ])
    confirm = PasswordField("Repeat password", validators=[
        DataRequired("Repeat your password."), EqualTo("password", "The passwords don't match."),
    ])
    role = RadioField("I want to", choices=options([("member", "Train with a coach"), ("trainer", "Coach as a trainer")]),
                      default="member", validators=[InputRequired("Choose member or trainer.")])
    # Preselected: the browser's zone when the site knows it (auth.signup); "" is "the browser's",
    # for a page rendered before live.js could tell it (it has by the time the form is sent).
    time_zone = TimeZoneField(automatic="Same as this browser", default="")

    def validate_time_zone(self, field) -> None:
        if field.data == "":
            field.data = browser_zone() or ""
        if field.data == "":
            raise ValidationError("Choose your time zone from the list (this browser did not tell us its own).")


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email."), Length(max=254),
                                            Email("Enter a valid email address.", check_deliverability=False)])


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[
        DataRequired("Choose a password."),
        Length(min=10, max=200, message="Use at least 10 characters (at most 200)."),
    ])
    confirm = PasswordField("Repeat new password", validators=[
        DataRequired("Repeat your password."), EqualTo("password", "The passwords don't match."),
    ])


class SearchForm(FlaskForm):
    """GET form: no CSRF (it changes nothing), every value bounded so bad input is a 400."""

    class Meta:
        csrf = False

    q = StringField("Name or goal", validators=[Optional(), Length(max=100, message="Use at most 100 characters.")])
    specialty = SelectField("Specialty", choices=[], validators=[Optional()], validate_choice=False)
    min_price = AmountField("Min price ($)", places=None, render_kw=PRICE_INPUT, validators=[
        Optional(), NumberRange(0, MAX_PRICE_DOLLARS, f"Enter a price from 0 to {MAX_PRICE_DOLLARS}.")])
    max_price = AmountField("Max price ($)", places=None, render_kw=PRICE_INPUT, validators=[
        Optional(), NumberRange(0, MAX_PRICE_DOLLARS, f"Enter a price from 0 to {MAX_PRICE_DOLLARS}.")])
    min_rating = SelectField("Minimum rating", choices=options([("", "Any rating"), ("3", "3★ and up"), ("4", "4★ and up"),
                                                        ("4.5", "4.5★ and up"),
                                                        ("4.8", "4.8★ and up")]), default="", validators=[Optional()])
    language = SelectField("Language", choices=options([("", "Any language")]) + LANGUAGE_CHOICES,
                           default="", validators=[Optional()])
    sort = SelectField("Sort by", choices=options(SORTS.items()), default="rating", validators=[Optional()])
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(1, 10_000, "Page out of range.")])

    def __init__(self, *args, specialties=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.specialty.choices = options([("", "Any specialty")] + [(s.slug, s.name) for s in specialties])

    def validate_specialty(self, field) -> None:
        if field.data and field.data not in {choice.value for choice in field.choices}:
            raise ValidationError("Unknown specialty. Pick one from the list.")

    def validate_max_price(self, field) -> None:
        if field.data is not None and self.min_price.data is not None and field.data < self.min_price.data:
            raise ValidationError("Max price must be at least the min price.")


class TrainerProfileForm(FlaskForm):
    display_name = StringField("Display name", validators=[DataRequired("Enter a display name."),
                                                           Length(min=2, max=80)])
    headline = StringField("Headline", validators=[Optional(), Length(max=140)])
    bio = TextAreaField("About you", validators=[Optional(), Length(max=5000)])
    price = AmountField("Price per session (USD)", places=2, validators=[
        InputRequired("Enter a price."), NumberRange(1, MAX_PRICE_DOLLARS, f"Enter a price from 1 to {MAX_PRICE_DOLLARS}.")])
    years_experience = IntegerField("Years of experience", default=0,
                                    validators=[Optional(), NumberRange(0, 70, "Enter 0 to 70 years.")])
    # Checkboxes, shown as chips (macros.chip_choices): no Ctrl-click multi-select.
    specialties = SelectMultipleField("Specialties", choices=[], coerce=str, widget=ListWidget(prefix_label=False),
                                      option_widget=CheckboxInput())
    languages = SelectMultipleField("Languages you coach in", choices=LANGUAGE_CHOICES,
                                    widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    credentials = TextAreaField("Credentials", filters=[_stripped], validators=[
        Optional(), Length(max=1000, message="Use at most 1000 characters.")])
    intro_video_url = StringField("Intro video link (optional)", filters=[_stripped], validators=[
        Optional(), Length(max=300, message="Use at most 300 characters.")])
    time_zone = TimeZoneField()

    def validate_intro_video_url(self, field) -> None:
        """https on an allowed host only: no other scheme, host, credentials or port."""
        try:
            parts = urlsplit(field.data)
            allowed = (parts.scheme == "https" and parts.hostname in current_app.config["INTRO_VIDEO_HOSTS"]
                       and not parts.username and parts.port is None)
        except ValueError:  # e.g. a port that is not a number
            allowed = False
        if not allowed:
            raise ValidationError("Paste an https link to your video on YouTube or Vimeo.")


class PhotoForm(FlaskForm):
    photo = FileField("Choose a photo")


class WeeklyHoursForm(FlaskForm):
    """Two of these editors share a page: prefixed ids, and CSRFProtect (every POST) guards them."""

    class Meta:
        csrf = False

    weekday = SelectField("Day", choices=options(enumerate(
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])), coerce=int)
    start = TimeField("From", validators=[InputRequired("Enter a start time.")])
    end = TimeField("Until", validators=[InputRequired("Enter an end time.")])


class OverrideForm(FlaskForm):
    class Meta:
        csrf = False

    day = DateField("Date", validators=[InputRequired("Pick a date.")])
    start = TimeField("From", validators=[Optional()])
    end = TimeField("Until", validators=[Optional()])


class RejectTrainerForm(FlaskForm):
    reason = TextAreaField("Reason (sent to the trainer)", validators=[
        DataRequired("Tell the trainer why."), Length(max=500)])


class ReviewForm(FlaskForm):
    # Strings, checked with AnyOf: a tampered value gets this message, not WTForms' coercion error.
    rating = RadioField("Your rating", choices=options([("5", "5 stars: excellent"), ("4", "4 stars: good"), ("3", "3 stars: OK"),
                                                     ("2", "2 stars: disappointing"), ("1", "1 star: poor")]),
                        validate_choice=False, validators=[
                            InputRequired("Choose 1 to 5 stars."),
                            AnyOf(["1", "2", "3", "4", "5"], "Choose 1 to 5 stars.")])
    text = TextAreaField("Your review", filters=[_stripped], validators=[
        DataRequired("Tell other members how the session went."),
        Length(review_rules.TEXT_MIN, review_rules.TEXT_MAX,
               f"Use {review_rules.TEXT_MIN} to {review_rules.TEXT_MAX} characters.")])


class ReplyForm(FlaskForm):
    reply = TextAreaField("Your reply (shown under the review)", filters=[_stripped], validators=[
        DataRequired("Write your reply."),
        Length(review_rules.REPLY_MIN, review_rules.REPLY_MAX, f"Use at most {review_rules.REPLY_MAX} characters.")])


def _moderation_reason(label: str, when_missing: str) -> TextAreaField:
    return TextAreaField(label, filters=[_stripped], validators=[
        DataRequired(when_missing),
        Length(review_rules.REASON_MIN, review_rules.REASON_MAX,
               f"Use {review_rules.REASON_MIN} to {review_rules.REASON_MAX} characters.")])


class FlagReviewForm(FlaskForm):
    reason = _moderation_reason("What is wrong with this review?", "Tell the moderators what is wrong.")


class HideReviewForm(FlaskForm):
    reason = _moderation_reason("Reason for hiding (kept in the moderation log)", "Give a reason for the log.")
