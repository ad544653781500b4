"""Every string the shopper sees, keyed by a short name: the English here, the translations in
the gettext catalogs widget/translations/<lang>/LC_MESSAGES/messages.po.

The English text is the msgid. After changing a message: `pybabel extract -F babel.cfg -o
/tmp/messages.pot . && pybabel update -i /tmp/messages.pot -d widget/translations`, translate,
then `pybabel compile -d widget/translations` (the .mo files are committed;
tests/test_i18n.py fails when a catalog lacks a message or a .mo differs from its .po). Each
locale's tables are built once, at import, so a page costs no gettext call.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from gettext import NullTranslations
from pathlib import Path
from types import MappingProxyType

from babel import Locale
from babel.numbers import format_decimal
from babel.support import Translations
from flask import Flask, request
from flask_babel import Babel

DEFAULT = "en"
LOCALES = ("en", "fr", "de", "es", "it", "nl", "pt", "sv", "da", "pl", "ja", "ar")
TRANSLATIONS = Path(__file__).parent / "translations"
DOMAIN = "messages"

# Flask-Babel, bound in init_app: get_locale() and templates' gettext read the same catalogs.
babel_ext = Babel()


def N_(message: str) -> str:
    """Marks a message for `pybabel extract` (babel.cfg); translated when the tables are built."""
    return message


def NN_(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message with a plural (babel.cfg's `NN_:1,2`); see plural()."""
    return singular, plural


# Messages with one form (templates read them as `t.key`), then those with plural forms.
MESSAGES: dict[str, str] = {
    "heading": N_("Write a review"),
    "mode_legend": N_("What would you like to do?"),
    "mode_review": N_("Write a review"),
    "mode_question": N_("Ask a question"),
    "rating": N_("Rating"),
    "star_1": N_("1 star"),
    "star_2": N_("2 stars"),
    "star_3": N_("3 stars"),
    "star_4": N_("4 stars"),
    "star_5": N_("5 stars"),
    "title": N_("Title"),
    "content_review": N_("Your review"),
    "content_question": N_("Your question"),
    "author": N_("Name"),
    "email": N_("Email"),
    "email_hint": N_("Never shown publicly."),
    "optional": N_("(optional)"),
    "photos": N_("Photos"),
    "photo_alt": N_("Photo {n}"),
    "photo_remove": N_("Remove photo {n}"),
    "photo_preparing": N_("Preparing photos…"),
    "photo_not_image": N_("{name} is not a photo we can use (JPEG, PNG or WebP)."),
    "incentive": N_("Did you receive anything for this review?"),
    "incentive_none": N_("No, nothing"),
    "incentive_coupon_or_discount": N_("A coupon or discount"),
    "incentive_employee_review": N_("I work for this company"),
    "incentive_free_product": N_("A free product"),
    "incentive_loyalty_points": N_("Loyalty points"),
    "incentive_paid_promotion": N_("A payment"),
    "incentive_sweepstakes_entry": N_("An entry in a prize draw"),
    "incentive_other": N_("Something else"),
    "honeypot": N_("Leave this field empty"),
    "submit": N_("Send"),
    "sending": N_("Sending…"),
    "summary": N_("Please check the following:"),
    "thanks_heading": N_("Thank you!"),
    "thanks_review": N_("We received your review. It will appear on the site after moderation."),
    "thanks_question": N_("We received your question. It will appear on the site after "
                          "moderation."),
    "err_rating": N_("Choose a rating from 1 to 5 stars."),
    "err_title": N_("Use a title of at most {title_max} characters, plain text."),
    "err_content": N_("Write your text (plain text, at most {content_max} characters)."),
    "err_author": N_("Enter your name."),
    "err_email": N_("Enter a valid email address, like name@example.com."),
    "err_photos": N_("Photo {n} could not be used; remove it or choose another."),
    "err_incentive": N_("Choose one of the options."),
    "err_type": N_("Choose whether you write a review or ask a question."),
    "err_question": N_("Answer this question."),
    "err_other": N_("Something in the form could not be accepted: {detail}"),
    "err_network": N_("Not sent: the connection failed. Everything you entered is still here; try "
                      "again."),
    "err_server": N_("Not sent: the service is unavailable right now. Everything you entered is "
                     "still here; try again in a moment."),
    "err_throttled": N_("Not sent: too many submissions from this connection. Wait a minute, then "
                        "try again."),
    "err_resent": N_("This form was sent before. To send it as it is now, as a new review, press "
                     "Send again."),
    "err_unavailable": N_("Not sent: your review could not be stored safely just now. Everything "
                          "you entered is still here; send it again in a moment."),
    "err_malformed": N_("The form did not arrive whole, so nothing was sent. Fill it in and send "
                        "it again."),
    "err_too_large": N_("The form with its photos is too large to send. Nothing was sent: choose "
                        "fewer or smaller photos and fill it in again."),
    "err_timeout": N_("Not sent: the service took too long to answer. Everything you entered is "
                      "still here; try again."),
    "err_expired": N_("This form is too old to send. Copy your text, reload the page and send it "
                      "again."),
    "err_busy": N_("Not sent: the service is busy with other photos just now. Everything you "
                   "entered is still here; send it again in a few seconds."),
    "err_already_sent": N_("You already sent a review with this text for this product. A review "
                           "cannot be changed once sent; to send another, write new text."),
    "err_setup": N_("This review form is not set up correctly: {detail}"),
    "demo_title": N_("Demo storefront"),
    "demo_product": N_("Organic cotton T-shirt"),
    "demo_intro": N_("This page embeds the review form with one script tag, as a shop would."),
    "reviews_heading": N_("Customer reviews"),
    "store_heading": N_("Reviews of our shop"),
    "questions_heading": N_("Questions and answers"),
    "tabs": N_("Reviews and questions"),
    "average": N_("{average} out of 5"),
    "average_label": N_("Average rating: {average} out of 5"),
    "histogram": N_("Ratings"),
    "histogram_bar": N_("{stars}: {count}"),
    "filtered": N_("Showing {stars} reviews only."),
    "filter_clear": N_("Show all ratings"),
    "tab_reviews": N_("Reviews ({count})"),
    "tab_questions": N_("Questions ({count})"),
    "sort": N_("Sort by"),
    "sort_newest": N_("Newest"),
    "sort_highest": N_("Highest rated"),
    "sort_lowest": N_("Lowest rated"),
    "sort_photos": N_("With photos"),
    "sort_apply": N_("Sort"),
    "rated": N_("Rated {rating} out of 5"),
    "verified": N_("Verified buyer"),
    "featured": N_("Featured"),
    "anonymous": N_("Anonymous"),
    "reply_from": N_("Reply from {author}"),
    "answer_from": N_("Answer from {author}"),
    "the_shop": N_("the shop"),
    "no_answer": N_("Not answered yet."),
    "photo_open": N_("Photo {n} by {author}, full size"),
    "empty_reviews": N_("No reviews yet. Be the first to write one."),
    "empty_questions": N_("No questions yet. Ask the first one."),
    "empty_filtered": N_("No reviews with this rating yet."),
    "write_review": N_("Write a review"),
    "ask_question": N_("Ask a question"),
    "pages": N_("Pages"),
    "page_prev": N_("Previous page"),
    "page_next": N_("Next page"),
    "page_of": N_("Page {number} of {pages}"),
    "demo_reviews": N_("What customers say"),
    "order_heading": N_("Review your order"),
    "order_product": N_("Product {n}"),
    "store_review_heading": N_("Your review of our shop"),
    "order_all_sent": N_("Thank you: every review of this order has been sent."),
    "range_hint": N_("Choose a number from {min} to {max}."),
}
PLURALS: dict[str, tuple[str, str]] = {
    "count": NN_("{count} review", "{count} reviews"),
    "photo_count": NN_("{n} photo attached.", "{n} photos attached."),
    "photos_hint": NN_("Up to {max} JPEG, PNG or WebP photo. You can also drop it here.",
                       "Up to {max} JPEG, PNG or WebP photos. You can also drop them here."),
    "photo_too_many": NN_("You can add at most {max} photo.", "You can add at most {max} photos."),
    "order_intro": NN_("Review the {count} product of your order, then our shop. Each form is "
                       "sent on its own.",
                       "Review the {count} products of your order, then our shop. Each form is "
                       "sent on its own."),
}

# The strings the browser script needs (errors it finds itself, photo handling, status); its
# plurals (photo_count, photo_too_many) reach it as forms per number, built with plural().
SCRIPT_KEYS = (
    "photo_alt", "photo_remove", "photo_preparing", "photo_not_image", "sending", "err_rating",
    "err_title", "err_content", "err_author", "err_email", "err_photos", "err_incentive",
    "err_type", "err_question", "err_other", "err_network", "err_server", "err_throttled",
    "err_unavailable", "err_timeout", "err_expired", "err_already_sent", "err_busy",
)


@dataclass(frozen=True)
class Catalog:
    """One locale's messages, read once from its compiled catalog."""

    strings: Mapping[str, str]
    translations: NullTranslations
    direction: str

    @classmethod
    def load(cls, locale: str) -> Catalog:
        # Without a .mo (English) this is NullTranslations: the msgids, English plural rule.
        translations = Translations.load(str(TRANSLATIONS), [locale], DOMAIN)
        table = {key: translations.gettext(message) for key, message in MESSAGES.items()}
        return cls(MappingProxyType(table), translations, Locale.parse(locale).text_direction)


CATALOGS = {locale: Catalog.load(locale) for locale in LOCALES}


def choose(requested: str | None, accepted: Iterable[str] = ()) -> str:
    """The locale to use: the `locale` query when we have it (fr-CA counts as fr), else the
    browser's preference, else English."""
    for candidate in ([requested] if requested else []) + list(accepted):
        language = candidate.replace("_", "-").split("-")[0].lower()
        if language in CATALOGS:
            return language
    return DEFAULT


def _catalog(locale: str) -> Catalog:
    return CATALOGS.get(locale) or CATALOGS[DEFAULT]


def strings(locale: str) -> Mapping[str, str]:
    """Key -> text of the messages with one form (plurals come from plural())."""
    return _catalog(locale).strings


def direction(locale: str) -> str:
    """"rtl" for a language written right to left (Arabic), else "ltr"."""
    return _catalog(locale).direction


def _placeholder(singular: str) -> str:
    # A plural message has exactly one placeholder: the number that picks its form.
    (name,) = {field for _, field, _, _ in string.Formatter().parse(singular) if field}
    return name


PLACEHOLDERS = {key: _placeholder(singular) for key, (singular, _) in PLURALS.items()}


@lru_cache(maxsize=4096)  # the same few counts come back on every page
def plural(locale: str, key: str, number: int) -> str:
    """The form of plural message `key` for `number` (ngettext, by the catalog's
    Plural-Forms), its number written as the locale writes numbers: "1 234 avis"."""
    locale = locale if locale in CATALOGS else DEFAULT
    text = CATALOGS[locale].translations.ngettext(*PLURALS[key], number)
    return text.format_map({PLACEHOLDERS[key]: format_decimal(number, locale=locale)})


class _Keep(dict):
    """Placeholders with no value stay as they are, to be filled where they are used."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(table: Mapping[str, str], locale: str, numbers: Mapping[str, int]) -> dict[str, str]:
    """The table with these number placeholders filled, written as the locale writes
    numbers (10,000 / 10 000 / 10.000); other placeholders are left for later."""
    values = _Keep({name: format_decimal(number, locale=locale)
                    for name, number in numbers.items()})
    return {key: text.format_map(values) for key, text in table.items()}


def request_locale() -> str:
    """Flask-Babel's locale for this request, chosen as the pages choose theirs."""
    return choose(request.args.get("locale"), request.accept_languages.values())


def init_app(app: Flask) -> None:
    """Flask-Babel on the same catalogs (for `get_locale()`, and `_`/`ngettext` in
    templates), and `text_direction(locale)` for the templates' <html dir>."""
    babel_ext.init_app(app, locale_selector=request_locale, default_domain=DOMAIN,
                       default_translation_directories=str(TRANSLATIONS))
    app.add_template_global(direction, "text_direction")
