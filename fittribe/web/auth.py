from flask import Blueprint, current_app, flash, g, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..extensions import limiter
from ..models import Role
from ..realtime.live import browser_zone
from ..services import accounts
from ..services.time_zones import zone_name
from .forms import ForgotPasswordForm, LoginForm, ResetPasswordForm, SignupForm
from .htmx import render, see_other
from .params import safe_next

bp = Blueprint("auth", __name__)


def _limit(name: str):
    return limiter.limit(lambda: current_app.config[name], methods=["POST"])


def _safe_next(default: str) -> str:
    return safe_next(request.args.get("next"), default)


def _log_in(user, remember: bool = False) -> None:
    login_user(user, remember=remember)
    # A new CSRF token for the new session: one planted or seen before the login is worthless now.
    session.pop("csrf_token", None)
    g.pop("csrf_token", None)


def _form_response(page: str, partial: str, form, **context):
    """The form page, or its fragment for htmx; 422 when it carries field errors."""
    return render(page, partial, status=422 if form.errors else 200, form=form, **context)


def _mention_other_clock(user) -> None:
    """Times now follow the account, not this browser: say so when the two differ."""
    device = browser_zone()
    if device and device != user.time_zone:
        flash(f"Times are shown in your account's time zone, {zone_name(user.time_zone)}; this browser is on "
              f"{zone_name(device)}. Change it at the foot of any page.", "info")


@bp.route("/signup", methods=["GET", "POST"])
@_limit("RATELIMIT_SIGNUP")
def signup():
    if current_user.is_authenticated:
        return see_other(url_for("dashboard.home"))
    # The clock the visitor saw times on (the browser's, or one picked) is the account's too.
    form = SignupForm(time_zone=current_user.time_zone or "")
    if form.validate_on_submit():
        try:
            user = accounts.register(accounts.SignUp(
                email=form.email.data, password=form.password.data, name=form.name.data,
                role=Role(form.role.data), time_zone=form.time_zone.data,
            ))
        except accounts.AccountError as error:
            getattr(form, error.field).errors.append(str(error))
        else:
            _log_in(user)
            if user.role is Role.TRAINER:
                flash("Welcome! Complete your profile; an admin reviews it before it is listed.", "success")
                return see_other(url_for("dashboard.trainer_profile"))
            # Back to where they came from (a time picked on a profile), else to the search.
            back = _safe_next("")
            flash("Welcome to FitTribe!" if back else "Welcome to FitTribe! Find a trainer to get started.", "success")
            return see_other(back or url_for("trainers.search"))
    return _form_response("pages/signup.html", "partials/signup_form.html", form)


@bp.route("/login", methods=["GET", "POST"])
@_limit("RATELIMIT_LOGIN")
def login():
    if current_user.is_authenticated:
        return see_other(_safe_next(url_for("dashboard.home")))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is None:
            form.password.errors.append("That email and password don't match. Check both, or reset your password.")
        elif not user.is_active:
            form.email.errors.append("This account is suspended. Contact support if you think this is a mistake.")
        else:
            _log_in(user, remember=form.remember.data)
            flash(f"Welcome back, {user.name}.", "success")
            _mention_other_clock(user)
            return see_other(_safe_next(url_for("dashboard.home")))
    return _form_response("pages/login.html", "partials/login_form.html", form)


@bp.post("/logout")
@login_required
def logout():
    # Server-side: a copy of this session or remember cookie (another tab, device or thief) ends too.
    accounts.revoke_sessions(current_user)
    logout_user()
    flash("You are logged out.", "info")
    return see_other(url_for("public.home"))


@bp.route("/account/sessions", methods=["GET", "POST"])
@login_required
def log_out_everywhere():
    """Ends every session and remembered login of the account, this one included, after a confirm
    step (works without JS): for a lost phone or a shared computer."""
    if request.method == "POST" and request.form.get("confirm") == "yes":
        accounts.revoke_sessions(current_user)
        logout_user()
        flash("You are logged out on every device. Log in again here.", "info")
        return see_other(url_for("auth.login"))
    return render("pages/log_out_everywhere.html", "pages/log_out_everywhere.html")


@bp.route("/password/forgot", methods=["GET", "POST"])
@_limit("RATELIMIT_PASSWORD_RESET")
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data)
        # The same answer, in the same time, whether or not the account exists.
        flash("If an account uses that email, a reset link is on its way. It works for one hour.", "info")
        return see_other(url_for("auth.login"))
    return _form_response("pages/forgot_password.html", "partials/forgot_password_form.html", form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@_limit("RATELIMIT_PASSWORD_RESET")
def reset_password(token: str):
    user = accounts.user_for_reset_token(token)
    if user is None:
        flash("That reset link is invalid or has expired. Ask for a new one.", "error")
        return see_other(url_for("auth.forgot_password"))
    form = ResetPasswordForm()
    if form.validate_on_submit():
        accounts.reset_password(user, form.password.data)
        flash("Your password is changed. Log in with the new one.", "success")
        return see_other(url_for("auth.login"))
    return _form_response("pages/reset_password.html", "partials/reset_password_form.html", form, token=token)
