"""Every string the shopper sees, in English, French and German; one place to translate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from babel.numbers import format_decimal

DEFAULT = "en"

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "heading": "Write a review",
        "mode_legend": "What would you like to do?",
        "mode_review": "Write a review",
        "mode_question": "Ask a question",
        "rating": "Rating",
        "star_1": "1 star",
        "star_2": "2 stars",
        "star_3": "3 stars",
        "star_4": "4 stars",
        "star_5": "5 stars",
        "title": "Title",
        "content_review": "Your review",
        "content_question": "Your question",
        "author": "Name",
        "email": "Email",
        "email_hint": "Never shown publicly.",
        "optional": "(optional)",
        "photos": "Photos",
        "photos_hint": "Up to {max} JPEG, PNG or WebP photos. You can also drop them here.",
        "photo_alt": "Photo {n}",
        "photo_remove": "Remove photo {n}",
        "photo_preparing": "Preparing photos…",
        "photo_not_image": "{name} is not a photo we can use (JPEG, PNG or WebP).",
        "photo_too_many": "You can add at most {max} photos.",
        "photo_count": "Photos attached: {n}.",
        "incentive": "Did you receive anything for this review?",
        "incentive_none": "No, nothing",
        "incentive_coupon_or_discount": "A coupon or discount",
        "incentive_employee_review": "I work for this company",
        "incentive_free_product": "A free product",
        "incentive_loyalty_points": "Loyalty points",
        "incentive_paid_promotion": "A payment",
        "incentive_sweepstakes_entry": "An entry in a prize draw",
        "incentive_other": "Something else",
        "honeypot": "Leave this field empty",
        "submit": "Send",
        "sending": "Sending…",
        "summary": "Please check the following:",
        "thanks_heading": "Thank you!",
        "thanks_review": "We received your review. It will appear on the site after moderation.",
        "thanks_question": "We received your question. It will appear on the site after "
                           "moderation.",
        "err_rating": "Choose a rating from 1 to 5 stars.",
        "err_title": "Use a title of at most {title_max} characters, plain text.",
        "err_content": "Write your text (plain text, at most {content_max} characters).",
        "err_author": "Enter your name.",
        "err_email": "Enter a valid email address, like name@example.com.",
        "err_photos": "Photo {n} could not be used; remove it or choose another.",
        "err_incentive": "Choose one of the options.",
        "err_type": "Choose whether you write a review or ask a question.",
        "err_question": "Answer this question.",
        "err_other": "Something in the form could not be accepted: {detail}",
        "err_network": "Not sent: the connection failed. Everything you entered is still "
                       "here; try again.",
        "err_server": "Not sent: the service is unavailable right now. Everything you entered "
                      "is still here; try again in a moment.",
        "err_throttled": "Not sent: too many submissions from this connection. Wait a minute, "
                         "then try again.",
        "err_resent": "This form was sent before. To send it as it is now, as a new review, "
                      "press Send again.",
        "err_unavailable": "Not sent: your review could not be stored safely just now. "
                           "Everything you entered is still here; send it again in a moment.",
        "err_malformed": "The form did not arrive whole, so nothing was sent. Fill it in and "
                         "send it again.",
        "err_too_large": "The form with its photos is too large to send. Nothing was sent: "
                         "choose fewer or smaller photos and fill it in again.",
        "err_timeout": "Not sent: the service took too long to answer. Everything you "
                       "entered is still here; try again.",
        "err_expired": "This form is too old to send. Copy your text, reload the page and "
                       "send it again.",
        "err_busy": "Not sent: the service is busy with other photos just now. Everything "
                    "you entered is still here; send it again in a few seconds.",
        "err_already_sent": "You already sent a review with this text for this product. A "
                            "review cannot be changed once sent; to send another, write new "
                            "text.",
        "err_setup": "This review form is not set up correctly: {detail}",
        "demo_title": "Demo storefront",
        "demo_product": "Organic cotton T-shirt",
        "demo_intro": "This page embeds the review form with one script tag, as a shop would.",
        "reviews_heading": "Customer reviews",
        "store_heading": "Reviews of our shop",
        "questions_heading": "Questions and answers",
        "tabs": "Reviews and questions",
        "average": "{average} out of 5",
        "average_label": "Average rating: {average} out of 5",
        "count_one": "1 review",
        "count_other": "{count} reviews",
        "histogram": "Ratings",
        "histogram_bar": "{stars}: {count}",
        "filtered": "Showing {stars} reviews only.",
        "filter_clear": "Show all ratings",
        "tab_reviews": "Reviews ({count})",
        "tab_questions": "Questions ({count})",
        "sort": "Sort by",
        "sort_newest": "Newest",
        "sort_highest": "Highest rated",
        "sort_lowest": "Lowest rated",
        "sort_photos": "With photos",
        "sort_apply": "Sort",
        "rated": "Rated {rating} out of 5",
        "verified": "Verified buyer",
        "featured": "Featured",
        "anonymous": "Anonymous",
        "reply_from": "Reply from {author}",
        "answer_from": "Answer from {author}",
        "the_shop": "the shop",
        "no_answer": "Not answered yet.",
        "photo_open": "Photo {n} by {author}, full size",
        "empty_reviews": "No reviews yet. Be the first to write one.",
        "empty_questions": "No questions yet. Ask the first one.",
        "empty_filtered": "No reviews with this rating yet.",
        "write_review": "Write a review",
        "ask_question": "Ask a question",
        "pages": "Pages",
        "page_prev": "Previous page",
        "page_next": "Next page",
        "page_of": "Page {number} of {pages}",
        "demo_reviews": "What customers say",
    },
    "fr": {
        "heading": "Rédiger un avis",
        "mode_legend": "Que souhaitez-vous faire ?",
        "mode_review": "Rédiger un avis",
        "mode_question": "Poser une question",
        "rating": "Note",
        "star_1": "1 étoile",
        "star_2": "2 étoiles",
        "star_3": "3 étoiles",
        "star_4": "4 étoiles",
        "star_5": "5 étoiles",
        "title": "Titre",
        "content_review": "Votre avis",
        "content_question": "Votre question",
        "author": "Nom",
        "email": "E-mail",
        "email_hint": "Jamais affiché publiquement.",
        "optional": "(facultatif)",
        "photos": "Photos",
        "photos_hint": "Jusqu'à {max} photos JPEG, PNG ou WebP. Vous pouvez aussi les "
                       "déposer ici.",
        "photo_alt": "Photo {n}",
        "photo_remove": "Retirer la photo {n}",
        "photo_preparing": "Préparation des photos…",
        "photo_not_image": "{name} n'est pas une photo utilisable (JPEG, PNG ou WebP).",
        "photo_too_many": "Vous pouvez ajouter {max} photos au maximum.",
        "photo_count": "Photos jointes : {n}.",
        "incentive": "Avez-vous reçu quelque chose en échange de cet avis ?",
        "incentive_none": "Non, rien",
        "incentive_coupon_or_discount": "Un bon ou une réduction",
        "incentive_employee_review": "Je travaille pour cette entreprise",
        "incentive_free_product": "Un produit gratuit",
        "incentive_loyalty_points": "Des points de fidélité",
        "incentive_paid_promotion": "Une rémunération",
        "incentive_sweepstakes_entry": "Une participation à un tirage au sort",
        "incentive_other": "Autre chose",
        "honeypot": "Laissez ce champ vide",
        "submit": "Envoyer",
        "sending": "Envoi en cours…",
        "summary": "Veuillez vérifier les points suivants :",
        "thanks_heading": "Merci !",
        "thanks_review": "Nous avons bien reçu votre avis. Il apparaîtra sur le site après "
                         "modération.",
        "thanks_question": "Nous avons bien reçu votre question. Elle apparaîtra sur le site "
                           "après modération.",
        "err_rating": "Choisissez une note de 1 à 5 étoiles.",
        "err_title": "Le titre doit être du texte simple de {title_max} caractères au plus.",
        "err_content": "Écrivez votre texte (texte simple, {content_max} caractères au plus).",
        "err_author": "Indiquez votre nom.",
        "err_email": "Indiquez une adresse e-mail valide, par exemple nom@example.com.",
        "err_photos": "La photo {n} n'a pas pu être utilisée ; retirez-la ou choisissez-en "
                      "une autre.",
        "err_incentive": "Choisissez l'une des options.",
        "err_type": "Indiquez si vous rédigez un avis ou posez une question.",
        "err_question": "Répondez à cette question.",
        "err_other": "Un élément du formulaire n'a pas pu être accepté : {detail}",
        "err_network": "Non envoyé : la connexion a échoué. Tout ce que vous avez saisi est "
                       "conservé ; réessayez.",
        "err_server": "Non envoyé : le service est indisponible pour le moment. Tout ce que "
                      "vous avez saisi est conservé ; réessayez dans un instant.",
        "err_throttled": "Non envoyé : trop d'envois depuis cette connexion. Attendez une "
                         "minute, puis réessayez.",
        "err_resent": "Ce formulaire a déjà été envoyé. Pour l'envoyer tel qu'il est "
                      "maintenant, comme un nouvel avis, appuyez de nouveau sur Envoyer.",
        "err_unavailable": "Non envoyé : votre avis n'a pas pu être enregistré pour le "
                           "moment. Tout ce que vous avez saisi est conservé ; renvoyez-le "
                           "dans un instant.",
        "err_malformed": "Le formulaire n'est pas arrivé entier, rien n'a été envoyé. "
                         "Remplissez-le et envoyez-le de nouveau.",
        "err_too_large": "Le formulaire et ses photos sont trop lourds pour être envoyés. "
                         "Rien n'a été envoyé : choisissez moins de photos ou des photos plus "
                         "petites et remplissez-le de nouveau.",
        "err_timeout": "Non envoyé : le service a mis trop de temps à répondre. Tout ce que "
                       "vous avez saisi est conservé ; réessayez.",
        "err_expired": "Ce formulaire est trop ancien pour être envoyé. Copiez votre texte, "
                       "rechargez la page et envoyez-le de nouveau.",
        "err_busy": "Non envoyé : le service traite d'autres photos en ce moment. Tout ce "
                    "que vous avez saisi est conservé ; renvoyez-le dans quelques secondes.",
        "err_already_sent": "Vous avez déjà envoyé un avis avec ce texte pour ce produit. Un "
                            "avis envoyé ne peut plus être modifié ; pour en envoyer un autre, "
                            "écrivez un nouveau texte.",
        "err_setup": "Ce formulaire d'avis n'est pas configuré correctement : {detail}",
        "demo_title": "Boutique de démonstration",
        "demo_product": "T-shirt en coton bio",
        "demo_intro": "Cette page intègre le formulaire d'avis avec une seule balise script, "
                      "comme le ferait une boutique.",
        "reviews_heading": "Avis clients",
        "store_heading": "Avis sur notre boutique",
        "questions_heading": "Questions et réponses",
        "tabs": "Avis et questions",
        "average": "{average} sur 5",
        "average_label": "Note moyenne : {average} sur 5",
        "count_one": "1 avis",
        "count_other": "{count} avis",
        "histogram": "Notes",
        "histogram_bar": "{stars} : {count}",
        "filtered": "Seuls les avis à {stars} sont affichés.",
        "filter_clear": "Afficher toutes les notes",
        "tab_reviews": "Avis ({count})",
        "tab_questions": "Questions ({count})",
        "sort": "Trier par",
        "sort_newest": "Plus récents",
        "sort_highest": "Meilleures notes",
        "sort_lowest": "Notes les plus basses",
        "sort_photos": "Avec photos",
        "sort_apply": "Trier",
        "rated": "Noté {rating} sur 5",
        "verified": "Achat vérifié",
        "featured": "À la une",
        "anonymous": "Anonyme",
        "reply_from": "Réponse de {author}",
        "answer_from": "Réponse de {author}",
        "the_shop": "la boutique",
        "no_answer": "Pas encore de réponse.",
        "photo_open": "Photo {n} de {author}, en grand",
        "empty_reviews": "Aucun avis pour l'instant. Soyez le premier à en écrire un.",
        "empty_questions": "Aucune question pour l'instant. Posez la première.",
        "empty_filtered": "Aucun avis avec cette note pour l'instant.",
        "write_review": "Rédiger un avis",
        "ask_question": "Poser une question",
        "pages": "Pages",
        "page_prev": "Page précédente",
        "page_next": "Page suivante",
        "page_of": "Page {number} sur {pages}",
        "demo_reviews": "Ce qu'en disent les clients",
    },
    "de": {
        "heading": "Bewertung schreiben",
        "mode_legend": "Was möchten Sie tun?",
        "mode_review": "Eine Bewertung schreiben",
        "mode_question": "Eine Frage stellen",
        "rating": "Sterne",
        "star_1": "1 Stern",
        "star_2": "2 Sterne",
        "star_3": "3 Sterne",
        "star_4": "4 Sterne",
        "star_5": "5 Sterne",
        "title": "Titel",
        "content_review": "Ihre Bewertung",
        "content_question": "Ihre Frage",
        "author": "Name",
        "email": "E-Mail",
        "email_hint": "Wird nie veröffentlicht.",
        "optional": "(optional)",
        "photos": "Fotos",
        "photos_hint": "Bis zu {max} Fotos (JPEG, PNG oder WebP). Sie können sie auch hierher "
                       "ziehen.",
        "photo_alt": "Foto {n}",
        "photo_remove": "Foto {n} entfernen",
        "photo_preparing": "Fotos werden vorbereitet…",
        "photo_not_image": "{name} ist kein verwendbares Foto (JPEG, PNG oder WebP).",
        "photo_too_many": "Sie können höchstens {max} Fotos hinzufügen.",
        "photo_count": "Angehängte Fotos: {n}.",
        "incentive": "Haben Sie für diese Bewertung etwas erhalten?",
        "incentive_none": "Nein, nichts",
        "incentive_coupon_or_discount": "Einen Gutschein oder Rabatt",
        "incentive_employee_review": "Ich arbeite für dieses Unternehmen",
        "incentive_free_product": "Ein kostenloses Produkt",
        "incentive_loyalty_points": "Treuepunkte",
        "incentive_paid_promotion": "Eine Bezahlung",
        "incentive_sweepstakes_entry": "Eine Teilnahme an einem Gewinnspiel",
        "incentive_other": "Etwas anderes",
        "honeypot": "Dieses Feld leer lassen",
        "submit": "Senden",
        "sending": "Wird gesendet…",
        "summary": "Bitte prüfen Sie Folgendes:",
        "thanks_heading": "Vielen Dank!",
        "thanks_review": "Wir haben Ihre Bewertung erhalten. Sie erscheint nach der Prüfung "
                         "auf der Website.",
        "thanks_question": "Wir haben Ihre Frage erhalten. Sie erscheint nach der Prüfung auf "
                           "der Website.",
        "err_rating": "Wählen Sie 1 bis 5 Sterne.",
        "err_title": "Der Titel darf höchstens {title_max} Zeichen einfacher Text sein.",
        "err_content": "Schreiben Sie Ihren Text (einfacher Text, höchstens {content_max} "
                       "Zeichen).",
        "err_author": "Geben Sie Ihren Namen ein.",
        "err_email": "Geben Sie eine gültige E-Mail-Adresse ein, z. B. name@example.com.",
        "err_photos": "Foto {n} konnte nicht verwendet werden; entfernen Sie es oder wählen "
                      "Sie ein anderes.",
        "err_incentive": "Wählen Sie eine der Möglichkeiten.",
        "err_type": "Wählen Sie, ob Sie eine Bewertung schreiben oder eine Frage stellen.",
        "err_question": "Bitte beantworten Sie diese Frage.",
        "err_other": "Etwas im Formular wurde nicht angenommen: {detail}",
        "err_network": "Nicht gesendet: Die Verbindung ist fehlgeschlagen. Ihre Eingaben sind "
                       "noch da; versuchen Sie es erneut.",
        "err_server": "Nicht gesendet: Der Dienst ist gerade nicht erreichbar. Ihre Eingaben "
                      "sind noch da; versuchen Sie es gleich noch einmal.",
        "err_throttled": "Nicht gesendet: zu viele Einsendungen von dieser Verbindung. Warten "
                         "Sie eine Minute und versuchen Sie es dann erneut.",
        "err_resent": "Dieses Formular wurde schon gesendet. Um es so, wie es jetzt ist, als "
                      "neue Bewertung zu senden, drücken Sie erneut auf Senden.",
        "err_unavailable": "Nicht gesendet: Ihre Bewertung konnte gerade nicht sicher "
                           "gespeichert werden. Ihre Eingaben sind noch da; senden Sie sie "
                           "gleich noch einmal.",
        "err_malformed": "Das Formular ist nicht vollständig angekommen; nichts wurde "
                         "gesendet. Füllen Sie es aus und senden Sie es erneut.",
        "err_too_large": "Das Formular mit den Fotos ist zu groß zum Senden. Nichts wurde "
                         "gesendet: Wählen Sie weniger oder kleinere Fotos und füllen Sie es "
                         "erneut aus.",
        "err_timeout": "Nicht gesendet: Der Dienst hat zu lange nicht geantwortet. Ihre "
                       "Eingaben sind noch da; versuchen Sie es erneut.",
        "err_expired": "Dieses Formular ist zu alt zum Senden. Kopieren Sie Ihren Text, laden "
                       "Sie die Seite neu und senden Sie ihn erneut.",
        "err_busy": "Nicht gesendet: Der Dienst verarbeitet gerade andere Fotos. Ihre "
                    "Eingaben sind noch da; senden Sie sie in ein paar Sekunden erneut.",
        "err_already_sent": "Sie haben zu diesem Produkt schon eine Bewertung mit diesem Text "
                            "gesendet. Eine gesendete Bewertung lässt sich nicht ändern; für "
                            "eine weitere schreiben Sie einen neuen Text.",
        "err_setup": "Dieses Bewertungsformular ist nicht richtig eingerichtet: {detail}",
        "demo_title": "Demo-Shop",
        "demo_product": "T-Shirt aus Bio-Baumwolle",
        "demo_intro": "Diese Seite bindet das Bewertungsformular mit einem Script-Tag ein, wie "
                      "es ein Shop tun würde.",
        "reviews_heading": "Kundenbewertungen",
        "store_heading": "Bewertungen unseres Shops",
        "questions_heading": "Fragen und Antworten",
        "tabs": "Bewertungen und Fragen",
        "average": "{average} von 5",
        "average_label": "Durchschnittliche Bewertung: {average} von 5",
        "count_one": "1 Bewertung",
        "count_other": "{count} Bewertungen",
        "histogram": "Bewertungen nach Sternen",
        "histogram_bar": "{stars}: {count}",
        "filtered": "Nur Bewertungen mit {stars} werden gezeigt.",
        "filter_clear": "Alle Bewertungen zeigen",
        "tab_reviews": "Bewertungen ({count})",
        "tab_questions": "Fragen ({count})",
        "sort": "Sortieren nach",
        "sort_newest": "Neueste",
        "sort_highest": "Beste Bewertung",
        "sort_lowest": "Schlechteste Bewertung",
        "sort_photos": "Mit Fotos",
        "sort_apply": "Sortieren",
        "rated": "Mit {rating} von 5 bewertet",
        "verified": "Verifizierter Kauf",
        "featured": "Hervorgehoben",
        "anonymous": "Anonym",
        "reply_from": "Antwort von {author}",
        "answer_from": "Antwort von {author}",
        "the_shop": "dem Shop",
        "no_answer": "Noch nicht beantwortet.",
        "photo_open": "Foto {n} von {author}, in voller Größe",
        "empty_reviews": "Noch keine Bewertungen. Schreiben Sie die erste.",
        "empty_questions": "Noch keine Fragen. Stellen Sie die erste.",
        "empty_filtered": "Noch keine Bewertungen mit diesen Sternen.",
        "write_review": "Bewertung schreiben",
        "ask_question": "Frage stellen",
        "pages": "Seiten",
        "page_prev": "Vorherige Seite",
        "page_next": "Nächste Seite",
        "page_of": "Seite {number} von {pages}",
        "demo_reviews": "Das sagen unsere Kunden",
    },
}
LOCALES = tuple(STRINGS)

# The strings the browser script needs (errors it finds itself, photo handling, status).
SCRIPT_KEYS = (
    "photo_alt", "photo_remove", "photo_preparing", "photo_not_image", "photo_too_many",
    "photo_count", "sending", "err_rating", "err_title", "err_content", "err_author",
    "err_email", "err_photos", "err_incentive", "err_type", "err_question", "err_other",
    "err_network", "err_server", "err_throttled", "err_unavailable", "err_timeout",
    "err_expired", "err_already_sent", "err_busy",
)


def choose(requested: str | None, accepted: Iterable[str] = ()) -> str:
    """The locale to use: the `locale` query when we have it (fr-CA counts as fr), else the
    browser's preference, else English."""
    for candidate in ([requested] if requested else []) + list(accepted):
        language = candidate.replace("_", "-").split("-")[0].lower()
        if language in STRINGS:
            return language
    return DEFAULT


def strings(locale: str) -> Mapping[str, str]:
    return STRINGS.get(locale, STRINGS[DEFAULT])


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
