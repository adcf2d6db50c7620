// The rendered page as HTML, without its scripts: the DOM as it stands now, with what
// exists only in the browser written out — form state, open and closed shadow roots (as
// declarative `<template shadowrootmode>`), style sheets changed or made by scripts
// (CSSOM, adopted sheets), canvases (as images), same-origin frames (as `srcdoc`).
//
// A function of (nonce, asFrame): frames of another origin, whose documents this context
// cannot read, are listed in `window["__linksnapFrames" + nonce]` and marked with the
// attribute `data-linksnap-frame-NONCE="INDEX"`, for the capture to serialise each in its
// own context and write in as `srcdoc`. `asFrame`: this document will be a `srcdoc`, so
// its addresses are made absolute.
(function (nonce, asFrame) {
  const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr", "param"]);
  const RAW = new Set(["style", "xmp", "noembed", "noframes"]);
  const hooks = window.__linksnap || { shadows: new WeakMap(), changed: new WeakSet(), fonts: [] };
  const others = [];
  Object.defineProperty(window, "__linksnapFrames" + nonce, { value: others, configurable: true });
  const text = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\u00a0/g, "&nbsp;");
  const quoted = (s) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/\u00a0/g, "&nbsp;");
  const rules = (sheet) => {
    try { return Array.from(sheet.cssRules, (r) => r.cssText).join("\n"); } catch (e) { return null; }
  };
  const attrText = (attrs) => Object.entries(attrs).map(([k, v]) => " " + k + '="' + quoted(v) + '"').join("");
  const adopted = (root, out) => {
    for (const sheet of root.adoptedStyleSheets || []) {
      const css = rules(sheet);
      if (css) out.push("<style>" + css.replace(/<\/style/gi, "<\\/style") + "</style>");
    }
  };
  // Fonts a script made with the FontFace API and added to `doc`, as @font-face rules.
  const scriptedFonts = (doc, out) => {
    const rulesOut = [];
    for (const { face, src, bytes } of hooks.fonts || []) {
      if (!doc.fonts || !doc.fonts.has(face) || face.status === "error") continue;
      let source = src;
      if (bytes) {
        let bin = "";
        for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
        source = 'url("data:application/octet-stream;base64,' + btoa(bin) + '")';
      }
      if (!source) continue;
      const family = '"' + face.family.replace(/^["']|["']$/g, "").replace(/["\\]/g, "\\$&") + '"';
      rulesOut.push("@font-face { font-family: " + family + "; src: " + source + "; font-style: " + face.style +
        "; font-weight: " + face.weight + "; font-stretch: " + face.stretch + "; unicode-range: " + face.unicodeRange +
        "; font-display: " + face.display + "; }");
    }
    if (rulesOut.length) out.push("<style>" + rulesOut.join("\n").replace(/<\/style/gi, "<\\/style") + "</style>");
  };
  function children(node, out) {
    for (let c = node.firstChild; c; c = c.nextSibling) one(c, out);
  }
  function one(node, out) {
    if (node.nodeType === 1) element(node, out);
    else if (node.nodeType === 3) {
      const p = node.parentNode;
      out.push(p && p.nodeType === 1 && RAW.has(p.localName) ? node.data : text(node.data));
    } else if (node.nodeType === 8) out.push("<!--" + node.data.replace(/-->/g, "-- >") + "-->");
  }
  function element(el, out) {
    const name = el.localName;
    if (name === "script" || name === "noscript") return;
    const a = {};
    for (const at of el.attributes) {
      if (/^on/i.test(at.name)) continue;
      a[at.name] = at.value;
    }
    for (const k of ["href", "src", "action", "formaction", "xlink:href"]) {
      if (a[k] !== undefined && /^\s*javascript:/i.test(a[k])) a[k] = "#";
    }
    if (asFrame || el.ownerDocument !== document) {
      // A frame's document becomes a `srcdoc`, whose relative addresses would resolve
      // against the top page: they are made absolute against the frame's own.
      const abs = (v) => { try { return new URL(v, el.baseURI).href; } catch (e) { return v; } };
      for (const k of ["href", "src", "poster", "action", "data", "background"]) {
        if (a[k] !== undefined && a[k] !== "#" && !/^\s*(data|blob|javascript|about):/i.test(a[k])) a[k] = abs(a[k]);
      }
      if (a.srcset !== undefined) {
        a.srcset = a.srcset.split(",").map((c) => {
          const [u, ...d] = c.trim().split(/\s+/);
          return [abs(u), ...d].join(" ");
        }).join(", ");
      }
    }
    let inner = null;
    if (name === "input") {
      const type = (el.type || "").toLowerCase();
      if (type === "checkbox" || type === "radio") {
        if (el.checked) a.checked = ""; else delete a.checked;
      } else if (type !== "file" && type !== "password") a.value = el.value;
    } else if (name === "option") {
      if (el.selected) a.selected = ""; else delete a.selected;
    } else if (name === "textarea") {
      inner = text(el.value);
    } else if (name === "img") {
      if (el.currentSrc && !el.currentSrc.startsWith("blob:")) a.src = el.currentSrc;
      delete a.loading;
    } else if (name === "canvas") {
      try {
        const img = { src: el.toDataURL() };
        for (const k of ["id", "class", "style", "width", "height", "title"]) if (a[k] !== undefined) img[k] = a[k];
        if (img.style === undefined && el.style.width === "") img.style = "width:" + el.clientWidth + "px;height:" + el.clientHeight + "px";
        out.push("<img" + attrText(img) + ">");
        return;
      } catch (e) {}
    } else if (name === "video" && a.poster === undefined && el.readyState >= 2) {
      try {
        const c = document.createElement("canvas");
        c.width = el.videoWidth; c.height = el.videoHeight;
        c.getContext("2d").drawImage(el, 0, 0);
        a.poster = c.toDataURL();
      } catch (e) {}
    } else if (name === "style") {
      if (el.sheet && hooks.changed.has(el.sheet)) {
        const css = rules(el.sheet);
        if (css !== null) inner = css.replace(/<\/style/gi, "<\\/style");
      }
    } else if (name === "iframe" || name === "frame") {
      let d = null;
      try { d = el.contentDocument; } catch (e) {}
      if (d && d.documentElement) {
        a.srcdoc = documentOf(d);
        delete a.src;
      } else if (name === "iframe" && el.contentWindow) {
        others.push(el);
        a["data-linksnap-frame-" + nonce] = String(others.length - 1);
      }
    }
    out.push("<" + name + attrText(a) + ">");
    if (VOID.has(name)) return;
    const root = el.shadowRoot || hooks.shadows.get(el);
    if (root) {
      out.push('<template shadowrootmode="' + root.mode + '"' + (root.delegatesFocus ? " shadowrootdelegatesfocus" : "") + ">");
      adopted(root, out);
      children(root, out);
      out.push("</template>");
    }
    if (inner !== null) out.push(inner);
    else if (name === "template") children(el.content, out);
    else children(el, out);
    if (name === "body") {
      adopted(el.ownerDocument, out);
      if (el.ownerDocument === document) scriptedFonts(document, out);
    }
    out.push("</" + name + ">");
  }
  function documentOf(doc) {
    const out = [];
    if (doc.doctype) out.push("<!DOCTYPE " + doc.doctype.name + ">");
    if (doc.documentElement) element(doc.documentElement, out);
    return out.join("");
  }
  return documentOf(document);
})
