/* Review widget loader: <script src=".../embed.js" data-product-id="..." async></script>
   inserts the form's iframe after itself, hidden until the form answers, and keeps its
   height equal to the form's through postMessage (origin and source checked). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var origin = new URL(script.src).origin;
  var names = { productId: "product_id", integration: "integration", orderId: "order_id",
    type: "type", productName: "product_name", locale: "locale", theme: "theme" };
  var query = new URLSearchParams();
  Object.keys(names).forEach(function (key) {
    if (script.dataset[key]) query.set(names[key], script.dataset[key]);
  });
  var frame = document.createElement("iframe");
  frame.src = origin + "/embed?" + query;
  frame.style.border = "0";
  frame.style.width = "100%";
  frame.style.height = "0";
  frame.style.display = "block";
  frame.style.visibility = "hidden";
  var ready = false;
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== origin || event.source !== frame.contentWindow || !data ||
        data.kr !== "height" || typeof data.height !== "number") return;
    frame.style.height = Math.max(0, Math.ceil(data.height)) + "px";
    if (typeof data.title === "string") frame.title = data.title;
    frame.style.visibility = "visible";
    ready = true;
  });
  // Say hello on every load (the form may navigate): the form learns our origin from it.
  frame.addEventListener("load", function () {
    frame.contentWindow.postMessage({ kr: "hello" }, origin);
    setTimeout(function () {
      if (!ready && window.console) {
        console.warn("Review widget did not answer: is this site in WIDGET_FRAME_ANCESTORS?");
      }
    }, 10000);
  });
  script.parentNode.insertBefore(frame, script.nextSibling);
}());
