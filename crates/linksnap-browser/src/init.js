// Installed before any script of the page runs (in every frame): remembers closed
// shadow roots, the style sheets a script changed through the CSSOM and the fonts it made
// through the FontFace API (with their sources), so that the serialiser can write all
// three; makes lazy images load like eager ones; refuses popups.
(() => {
  const shadows = new WeakMap();
  const changed = new WeakSet();
  const fonts = [];
  Object.defineProperty(window, "__linksnap", { value: { shadows, changed, fonts }, enumerable: false });
  window.open = function () { return null; };
  const NativeFontFace = window.FontFace;
  if (typeof NativeFontFace === "function") {
    // The source as given: CSS `src` text (its addresses made absolute now, against the
    // document that made it), or a copy of the bytes.
    const FontFace = function FontFace(family, source, descriptors) {
      const face = new NativeFontFace(family, source, descriptors);
      let src = null;
      let bytes = null;
      if (typeof source === "string") {
        src = source.replace(/url\(\s*(['"]?)([^'")]+)\1\s*\)/g, (m, q, u) => {
          try { return 'url("' + new URL(u, document.baseURI).href + '")'; } catch (e) { return m; }
        });
      } else if (source instanceof ArrayBuffer) {
        bytes = new Uint8Array(source.slice(0));
      } else if (source && ArrayBuffer.isView(source)) {
        bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength).slice();
      }
      fonts.push({ face, src, bytes });
      return face;
    };
    FontFace.prototype = NativeFontFace.prototype;
    window.FontFace = FontFace;
  }
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
