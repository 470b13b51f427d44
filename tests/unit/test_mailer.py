from email import message_from_bytes
from email.policy import default

from flask import Flask

from fittribe.services.mailer import send_mail


def test_mail_goes_to_the_outbox_folder_without_smtp(tmp_path):
    app = Flask(__name__)
    app.config.update(MAIL_SERVER=None, MAIL_FROM="FitTribe <no-reply@fittribe.example>",
                      MAIL_OUTBOX_DIR=str(tmp_path))
    with app.app_context():
        send_mail("a@example.com", "Hello", "Body text")
    files = list(tmp_path.glob("*.eml"))
    assert len(files) == 1
    message = message_from_bytes(files[0].read_bytes(), policy=default)
    assert (message["To"], message["Subject"], message.get_content().strip()) == ("a@example.com", "Hello", "Body text")
