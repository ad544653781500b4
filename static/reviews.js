/* The reviews display: height sync and schema.org data for the page that frames it. */
(function () {
  "use strict";
  var parentOrigin = null;
  var data = document.getElementById("kr-jsonld");

  // Reply only to our parent window, at the origin it said hello from; frame-ancestors
  // (CSP) already guarantees that origin may frame us.
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
    // The host page carries the data search engines read (embed.js puts it in its head).
    parent.postMessage({ kr: "jsonld", jsonld: data ? JSON.parse(data.textContent) : null },
      parentOrigin);
  });
  if (window.ResizeObserver) new ResizeObserver(report).observe(document.body);
}());
