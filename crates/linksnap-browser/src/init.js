// Installed before any script of the page runs (in every frame): remembers closed
// shadow roots and the style sheets a script changed through the CSSOM, so that the
// serialiser can write both; makes lazy images load like eager ones.
(() => {
  const shadows = new WeakMap();
  const changed = new WeakSet();
  Object.defineProperty(window, "__linksnap", { value: { shadows, changed }, enumerable: false });
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attach.call(this, init);
    if (init && init.mode === "closed") shadows.set(this, root);
    return root;
  };
  const mark = (proto, names) => {
    for (const name of names) {
      const original = proto && proto[name];
      if (typeof original !== "function") continue;
      proto[name] = function (...args) {
        const sheet = this instanceof CSSStyleSheet ? this : this.parentStyleSheet;
        if (sheet) changed.add(sheet);
        return original.apply(this, args);
      };
    }
  };
  mark(CSSStyleSheet.prototype, ["insertRule", "deleteRule", "addRule", "removeRule", "replace", "replaceSync"]);
  mark(window.CSSGroupingRule && CSSGroupingRule.prototype, ["insertRule", "deleteRule"]);
  const loading = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "loading");
  if (loading && loading.set) {
    Object.defineProperty(HTMLImageElement.prototype, "loading", {
      get() { return loading.get.call(this); },
      set() { loading.set.call(this, "eager"); },
      configurable: true,
    });
  }
})();
