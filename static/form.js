/* The review form: photos, client checks, JSON submission, errors, and height sync. */
(function () {
  "use strict";
  var parentOrigin = null;

  // Height sync: reply only to our parent window, at the origin it said hello from.
  // frame-ancestors (CSP) already guarantees that origin may frame us.
  function report() {
    if (!parentOrigin) return;
    parent.postMessage({ kr: "height", title: document.title,
      height: Math.ceil(document.body.getBoundingClientRect().height) }, parentOrigin);
  }
  addEventListener("message", function (event) {
    if (parent === window || event.source !== parent || !event.data ||
        event.data.kr !== "hello" || event.origin === "null") return;
    parentOrigin = event.origin;
    report();
  });
  if (window.ResizeObserver) new ResizeObserver(report).observe(document.body);

  // The page's forms (one, or an order's: a form per product, then the shop's) share
  // their settings and strings; each has its own fields, photos, key and token.
  var settings = document.getElementById("kr-settings");
  if (!settings) return;
  var data = settings.dataset;
  var say = JSON.parse(data.messages);
  var maxPhotos = +data.maxPhotos, maxEdge = +data.maxEdge, bodyLimit = +data.bodyLimit;
  var tokenMaxAge = +data.tokenMaxAge * 1000;
  var forms = document.querySelectorAll("form.kr-form");

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, k) { return values[k]; });
  }

  // Name and email typed once fill the other forms of an order, but not a field the
  // shopper has typed in themselves.
  function share(from, name) {
    var typed = from.elements[name];
    typed.dataset.own = "1";
    forms.forEach(function (other) {
      var field = other.elements[name];
      if (other !== from && !field.dataset.own) field.value = typed.value;
    });
  }
  if (forms.length > 1) {
    forms.forEach(function (form) {
      ["author", "email"].forEach(function (name) {
        form.elements[name].addEventListener("input", function () { share(form, name); });
      });
    });
  }

  forms.forEach(setUp);
  // Every handler is wired: the form is interactive (bench/browser.py times this mark).
  performance.mark("kr-ready");

  function setUp(form) {
    form.noValidate = true;
    var p = form.dataset.prefix;
    function byId(name) { return document.getElementById(p + "-" + name); }
    var tokenField = form.elements.form_token, tokenAt = Date.now();
    var input = byId("photos");
    var previews = byId("previews");
    var status = byId("status");
    var summary = byId("summary");
    var button = byId("submit");
    var photos = [];  // {file, blob, url}
    var sending = false, lastBody = null, lastKey = null, sentQuestions = [];

    function value(name) {
      var el = form.elements[name];
      return el ? el.value.trim() : "";
    }

    // Photos: decode, downscale to the longest edge, re-encode as JPEG (drops all metadata).
    function encode(file, edge, quality) {
      return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bmp) {
        var scale = Math.min(1, edge / Math.max(bmp.width, bmp.height));
        var canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(bmp.width * scale));
        canvas.height = Math.max(1, Math.round(bmp.height * scale));
        var g = canvas.getContext("2d");
        g.fillStyle = "#fff";
        g.fillRect(0, 0, canvas.width, canvas.height);
        g.drawImage(bmp, 0, 0, canvas.width, canvas.height);
        bmp.close();
        return new Promise(function (ok, fail) {
          canvas.toBlob(function (blob) { blob ? ok(blob) : fail(); }, "image/jpeg", quality);
        });
      });
    }
    function inTurn(items, step) {
      var results = [];
      return items.reduce(function (chain, item, i) {
        return chain.then(function () { return step(item, i); }).then(function (result) {
          results.push(result);
        });
      }, Promise.resolve()).then(function () { return results; });
    }
    function addFiles(files) {
      var problems = [];
      var chosen = Array.prototype.slice.call(files);
      if (photos.length + chosen.length > maxPhotos) {
        problems.push(say.photo_too_many);
        chosen = chosen.slice(0, Math.max(0, maxPhotos - photos.length));
      }
      status.textContent = say.photo_preparing;
      // One at a time: a phone holds one decoded 12 MP photo (48 MB) at once, not five.
      return inTurn(chosen, function (file) {
        var ok = /^image\/(jpeg|png|webp)$/.test(file.type);
        return (ok ? encode(file, maxEdge, 0.85) : Promise.reject()).then(function (blob) {
          photos.push({ file: file, blob: blob, url: URL.createObjectURL(blob) });
        }, function () {
          problems.push(fill(say.photo_not_image, { name: file.name }));
        });
      }).then(function () {
        input.value = "";
        showPhotos();
        setError("photos", problems.join(" "));
        status.textContent = say.photo_count[photos.length];
      });
    }
    function showPhotos() {
      previews.textContent = "";
      photos.forEach(function (photo, i) {
        var item = document.createElement("li");
        var img = document.createElement("img");
        img.src = photo.url;
        img.alt = fill(say.photo_alt, { n: i + 1 });
        var remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "\u2715";
        remove.setAttribute("aria-label", fill(say.photo_remove, { n: i + 1 }));
        remove.addEventListener("click", function () {
          URL.revokeObjectURL(photo.url);
          photos.splice(photos.indexOf(photo), 1);
          showPhotos();
          setError("photos", "");
          status.textContent = say.photo_count[photos.length];
          var next = previews.querySelectorAll("button")[Math.min(i, photos.length - 1)];
          (next || input).focus();
        });
        item.append(img, remove);
        previews.append(item);
      });
    }
    input.addEventListener("change", function () { addFiles(input.files); });
    var zone = byId("drop");
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("kr-dragging");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("kr-dragging"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("kr-dragging");
      addFiles(event.dataTransfer.files);
    });

    // Each photo gets an equal share of what the text leaves of the body limit (base64
    // grows bytes by 4/3); a photo over its share is encoded again, smaller, until it fits.
    var SMALLER = [[1, 0.72], [0.75, 0.72], [0.6, 0.65], [0.45, 0.6], [0.3, 0.6]];
    function fit(photo, share) {
      var attempt = 0;
      function tryNext(blob) {
        if (blob.size <= share) return Promise.resolve(blob);
        if (attempt >= SMALLER.length) return Promise.reject();
        var step = SMALLER[attempt++];
        return encode(photo.file, maxEdge * step[0], step[1]).then(tryNext);
      }
      return tryNext(photo.blob).then(function (blob) {
        photo.blob = blob;
        return new Promise(function (ok) {
          var reader = new FileReader();
          reader.onload = function () { ok(reader.result); };
          reader.readAsDataURL(blob);
        });
      });
    }

    function reviewBody() {
      var type = value("review_type") || form.querySelector("[name=review_type]:checked").value;
      var a = { review_type: type, email: value("email"), author: value("author"),
        content: value("content") };
      sentQuestions = [];
      if (type !== "question") {
        var rating = form.querySelector("[name=rating]:checked");
        if (rating) a.rating = +rating.value;
        if (value("title")) a.title = value("title");
        if (value("incentive_type")) a.incentive_type = value("incentive_type");
        var answers = [];
        form.querySelectorAll("[data-question]").forEach(function (field, i) {
          var picked = Array.prototype.filter.call(field.querySelectorAll("input, textarea"),
            function (el) { return (el.checked || el.tagName === "TEXTAREA") && el.value.trim(); })
            .map(function (el) { return el.value.trim(); });
          if (picked.length) {
            answers.push({ id: field.dataset.question, answers: picked });
            sentQuestions.push(i);
          }
        });
        if (answers.length) a.custom_questions = answers;
      }
      if (value("product_id")) {
        a.product = { external_id: value("product_id"), integration_key: value("integration") };
      }
      var body = { data: { type: "review", attributes: a } };
      if (value("order_id")) {
        body.data.relationships = { order: { data: { type: "order", id: value("order_id") } } };
      }
      return body;
    }

    // What the browser can tell before sending; the server has the last word.
    function check(body) {
      var a = body.data.attributes, found = [];
      if (a.review_type !== "question" && !a.rating) found.push(["rating", say.err_rating]);
      if (!a.content) found.push(["content", say.err_content]);
      if (!a.author) found.push(["author", say.err_author]);
      if (!/^[^\s@]+@[^\s@]+$/.test(a.email)) found.push(["email", say.err_email]);
      if (a.review_type !== "question") {
        form.querySelectorAll("[data-question][data-required]").forEach(function (field) {
          var answered = (a.custom_questions || []).some(function (q) {
            return q.id === field.dataset.question;
          });
          if (!answered) found.push([field.dataset.field, say.err_question]);
        });
      }
      return found;
    }

    function fieldOf(key) { return form.querySelector('[data-field="' + key + '"]'); }
    function setError(key, message) {
      var field = fieldOf(key);
      var slot = field && field.querySelector(".kr-error");
      if (!slot) return;
      slot.textContent = message;
      field.querySelectorAll("input, textarea, select").forEach(function (el) {
        if (el.type === "file") return;
        if (message) el.setAttribute("aria-invalid", "true");
        else el.removeAttribute("aria-invalid");
      });
    }
    function showErrors(found) {
      form.querySelectorAll("[data-field]").forEach(function (field) {
        setError(field.dataset.field, "");
      });
      var list = summary.querySelector("ul");
      list.textContent = "";
      found.forEach(function (pair) {
        var field = fieldOf(pair[0]);
        if (field) setError(pair[0], pair[1]);
        var target = field && field.querySelector("input:not([type=hidden]), textarea, select");
        var item = document.createElement("li");
        var link = document.createElement(target ? "a" : "span");
        link.textContent = pair[1];
        if (target) {
          link.href = "#" + target.id;
          link.addEventListener("click", function (event) {
            event.preventDefault();
            target.focus();
          });
        }
        item.append(link);
        list.append(item);
      });
      summary.hidden = false;
      summary.focus();
    }
    // Refusals that name no field of the form, each with the shopper's own message.
    var BY_CODE = { review_already_sent: "err_already_sent", outbox_unavailable: "err_unavailable",
      busy: "err_busy", backlog_full: "err_unavailable" };
    function fromServer(errors) {
      return (errors || []).map(function (error) {
        if (BY_CODE[error.code]) return ["other", say[BY_CODE[error.code]]];
        var m = /^\/data\/attributes\/(\w+)(?:\/(\d+))?/.exec((error.source || {}).pointer || "");
        var name = m && m[1], n = m && m[2] !== undefined ? +m[2] : 0;
        if (name === "images") return ["photos", fill(say.err_photos, { n: n + 1 })];
        if (name === "custom_questions") {
          return [m[2] !== undefined ? "q" + sentQuestions[n] : "questions", say.err_question];
        }
        var key = { incentive_type: "incentive", review_type: "type" }[name] || name;
        if (say["err_" + key] && fieldOf(key)) return [key, say["err_" + key]];
        return ["other", fill(say.err_other, { detail: error.detail || error.title })];
      });
    }

    function randomKey() {
      var bytes = crypto.getRandomValues(new Uint8Array(16));
      return Array.prototype.map.call(bytes, function (b) {
        return (b + 256).toString(16).slice(1);
      }).join("");
    }
    // Every request gives up after a bound (data-timeout seconds, plus upload time at a slow
    // uplink's 50 KB/s), so a lost answer never leaves the form waiting.
    function request(url, options, bytes) {
      var control = window.AbortController ? new AbortController() : null;
      var timer = control && setTimeout(function () { control.abort(); },
        data.timeout * 1000 + (bytes || 0) / 50);
      if (control) options.signal = control.signal;
      return fetch(url, options).then(function (response) {
        clearTimeout(timer);
        return response;
      }, function (error) {
        clearTimeout(timer);
        throw error && error.name === "AbortError" ? { found: [["other", say.err_timeout]] }
          : error;
      });
    }
    // The form's token lives WIDGET_TOKEN_MAX_AGE_SECONDS and is good for a few posts: an old
    // one is swapped for a fresh one of the same form first, keeping what was typed.
    function renewToken() {
      var query = "?integration=" + encodeURIComponent(value("integration"));
      if (value("product_id")) query += "&product_id=" + encodeURIComponent(value("product_id"));
      var headers = {};
      headers[tokenField.dataset.header] = tokenField.value;
      return request(data.tokenUrl + query, { headers: headers, credentials: "omit" })
        .then(function (response) {
          if (!response.ok) throw { found: [["other", say.err_expired]] };
          return response.json();
        }).then(function (answer) {
          tokenField.value = answer.token;
          tokenAt = Date.now();
        });
    }
    function freshToken() {
      return Date.now() - tokenAt > tokenMaxAge / 2 ? renewToken() : Promise.resolve();
    }
    function send(body, renewed) {
      var json = JSON.stringify(body);
      // The same body keeps its key, so a retried click can never make a second review.
      if (json !== lastBody) { lastBody = json; lastKey = randomKey(); }
      var headers = { "Content-Type": "application/vnd.api+json", "Idempotency-Key": lastKey };
      // Fields the server wants as headers (a form token, a honeypot) name them in data-header.
      form.querySelectorAll("[data-header]").forEach(function (el) {
        if (el.value) headers[el.dataset.header] = el.value;
      });
      return request(data.api, { method: "POST", headers: headers, body: json,
        credentials: "omit" }, json.length).then(function (response) {
        if (response.status !== 403 || renewed) return response;
        return response.clone().json().then(function (answer) {
          var code = ((answer.errors || [])[0] || {}).code;
          if (code !== "token_expired" && code !== "token_used_up") return response;
          return renewToken().then(function () { return send(body, true); });
        }, function () { return response; });
      });
    }
    function done() {
      form.hidden = true;
      var thanks = byId("thanks");
      thanks.hidden = false;
      thanks.focus();
      var all = document.getElementById("kr-order-done");
      if (all && !document.querySelector("form.kr-form:not([hidden])")) all.hidden = false;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (sending) return;
      var body = reviewBody();
      var found = check(body);
      if (found.length) return showErrors(found);
      sending = button.disabled = true;
      status.textContent = say.sending;
      var isReview = body.data.attributes.review_type !== "question";
      var chosen = isReview ? photos : [];
      var text = new Blob([JSON.stringify(body)]).size;
      var share = Math.floor((bodyLimit - text - 200) * 3 / 4 / Math.max(1, chosen.length));
      var failures = [];
      inTurn(chosen, function (photo, i) {
        return fit(photo, share).catch(function () {
          failures.push(["photos", fill(say.err_photos, { n: i + 1 })]);
        });
      }).then(function (uris) {
        if (failures.length) throw { found: failures };
        if (uris.length) body.data.attributes.images = uris;
        return freshToken().then(function () { return send(body); });
      }).then(function (response) {
        if (response.status === 202) return done();
        if (response.status === 429) throw { found: [["other", say.err_throttled]] };
        return response.json().then(function (answer) {
          var errors = answer.errors || [];
          // A server's trouble says "try again"; only ours is worth more words (503 codes).
          if (response.status >= 500) {
            errors = errors.filter(function (error) { return BY_CODE[error.code]; });
            if (!errors.length) throw { found: [["other", say.err_server]] };
          }
          throw { found: fromServer(errors) };
        }, function () { throw { found: [["other", say.err_server]] }; });
      }).catch(function (problem) {
        showErrors(problem && problem.found ? problem.found : [["other", say.err_network]]);
      }).finally(function () {
        sending = button.disabled = false;
        status.textContent = "";
      });
    });
  }
}());
