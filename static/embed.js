/* Review widget loader: <script src=".../embed.js" data-product-id="..." async></script>
   inserts the form's iframe after itself (data-products with data-order-id: a form per
   product of the order, then one for the shop) (data-widget="reviews": the product's reviews,
   "store-reviews": the shop's), hidden until it answers, and keeps its height equal to the
   page's through postMessage (origin and source checked). The reviews put the product's
   schema.org data into this page's head, for search engines (data-structured-data="false"
   leaves it out, for a theme that writes its own). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var origin = new URL(script.src).origin;
  var widget = script.dataset.widget || "form";
  var pages = { form: "/embed", reviews: "/reviews", "store-reviews": "/reviews" };
  if (!pages[widget]) {
    if (window.console) console.warn("Review widget: unknown data-widget " + widget);
    widget = "form";
  }
  var names = { productId: "product_id", integration: "integration", orderId: "order_id",
    type: "type", productName: "product_name", locale: "locale", theme: "theme" };
  var query = new URLSearchParams();
  Object.keys(names).forEach(function (key) {
    if (script.dataset[key]) query.set(names[key], script.dataset[key]);
  });
  // A whole order: data-products='[{"id": "...", "name": "..."}, ...]' (with data-order-id)
  // asks for a review form per product, in this order, then one for the shop.
  var products = null;
  if (widget === "form" && script.dataset.products) {
    try { products = JSON.parse(script.dataset.products); } catch (error) { products = null; }
    if (!Array.isArray(products) || !products.every(function (product) {
      return product && (typeof product.id === "string" || typeof product.id === "number");
    })) {
      if (window.console) {
        console.warn("Review widget: data-products is not a JSON list of {id, name}");
      }
      products = null;
    }
  }
  if (products) {
    query.delete("product_id");
    query.delete("product_name");
    query.set("type", "order");
    var named = products.some(function (product) { return product.name; });
    products.forEach(function (product) {
      query.append("product_id", String(product.id));
      if (named) query.append("product_name", product.name ? String(product.name) : "");
    });
  }
  if (widget === "store-reviews") {  // the shop's, whatever product page it sits on
    query.delete("product_id");
    query.delete("product_name");
    query.set("type", "store");
  }
  var frame = document.createElement("iframe");
  frame.src = origin + pages[widget] + "?" + query;
  frame.style.border = "0";
  frame.style.width = "100%";
  frame.style.height = "0";
  frame.style.display = "block";
  frame.style.visibility = "hidden";
  var ready = false;
  var structured = null;

  function describe(data) {
    if (widget !== "reviews" || script.dataset.structuredData === "false") return;
    var product = data.jsonld;
    if (!product || typeof product !== "object" || product["@type"] !== "Product") return;
    if (!structured) {
      structured = document.createElement("script");
      structured.type = "application/ld+json";
      structured.setAttribute("data-review-widget", "");
      document.head.appendChild(structured);
    }
    // "<" as \u003c (the same JSON): saved as HTML (a prerenderer, a cache), the text of a
    // review can then neither close this element ("</script>") nor open a comment ("<!--").
    structured.textContent = JSON.stringify(product).replace(/</g, "\\u003c");
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.origin !== origin || event.source !== frame.contentWindow || !data) return;
    if (data.kr === "jsonld") return describe(data);
    if (data.kr !== "height" || typeof data.height !== "number") return;
    frame.style.height = Math.max(0, Math.ceil(data.height)) + "px";
    if (typeof data.title === "string") frame.title = data.title;
    frame.style.visibility = "visible";
    ready = true;
  });
  // Say hello on every load (the frame may navigate): the page learns our origin from it.
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
