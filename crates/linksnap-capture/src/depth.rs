//! How deep a document's element tree is, as a browser would build it, without building
//! it: html5ever's tree builder (iterative, and the HTML parsing algorithm itself, so
//! implied and misnested tags count as a browser counts them) feeding a sink that keeps
//! only each node's parent and depth. Anything that walks a tree recursively (readable
//! text extraction) checks this bound first: a page of 100,000 nested `<div>`s must not
//! take the process down with a stack overflow. Pure.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use html5ever::interface::{ElemName, ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::{StrTendril, TendrilSink as _};
use html5ever::{Attribute, LocalName, Namespace, QualName, parse_document};

/// Deepest element nesting that readable text is extracted from, as browsers bound the
/// tree their parser builds (Chromium: 512). Deeper pages keep their snapshot and get no
/// readable text.
pub const MAX_DOM_DEPTH: usize = 512;

/// Input fed to the tree builder at a time while measuring: the measurement stops at the
/// first piece after which the tree is deeper than asked, so that a tower of 100,000
/// elements costs no more than one piece of it (the tree builder's scope checks scan the
/// stack of open elements, so each level costs as much as the depth: quadratic).
const PIECE_BYTES: usize = 8 << 10;

/// The depth of the deepest node of `html` (the document is 0, `<html>` 1), or, once it
/// passes `stop_above`, some depth above `stop_above` (the rest is not parsed).
pub fn max_depth(html: &str, stop_above: usize) -> usize {
    let deepest = std::rc::Rc::new(Cell::new(0));
    let sink = DepthSink {
        deepest: deepest.clone(),
        ..DepthSink::default()
    };
    let mut parser = parse_document(sink, Default::default());
    let mut rest = html;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PIECE_BYTES);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, after) = rest.split_at(cut);
        parser.process(StrTendril::from_slice(piece));
        rest = after;
        if deepest.get() > stop_above {
            return deepest.get();
        }
    }
    parser.finish()
}

/// An element's name, owned (cheap: the atoms are interned).
#[derive(Debug)]
pub struct Name(QualName);

impl ElemName for Name {
    fn ns(&self) -> &Namespace {
        &self.0.ns
    }

    fn local_name(&self) -> &LocalName {
        &self.0.local
    }
}

#[derive(Default)]
struct DepthSink {
    /// Per node: its name (elements only), parent and depth. Node 0 is the document.
    names: RefCell<Vec<Option<QualName>>>,
    parents: RefCell<Vec<Option<usize>>>,
    depths: RefCell<Vec<usize>>,
    deepest: std::rc::Rc<Cell<usize>>,
}

impl DepthSink {
    fn node(&self, name: Option<QualName>) -> usize {
        let mut names = self.names.borrow_mut();
        if names.is_empty() {
            // The document.
            names.push(None);
            self.parents.borrow_mut().push(None);
            self.depths.borrow_mut().push(0);
        }
        names.push(name);
        self.parents.borrow_mut().push(None);
        self.depths.borrow_mut().push(0);
        names.len() - 1
    }

    fn attach(&self, parent: usize, child: &NodeOrText<usize>) {
        let NodeOrText::AppendNode(child) = child else {
            return;
        };
        let depth = self.depths.borrow().get(parent).copied().unwrap_or(0) + 1;
        self.parents.borrow_mut()[*child] = Some(parent);
        self.depths.borrow_mut()[*child] = depth;
        if depth > self.deepest.get() {
            self.deepest.set(depth);
        }
    }
}

impl TreeSink for DepthSink {
    type Handle = usize;
    type Output = usize;
    type ElemName<'a> = Name;

    fn finish(self) -> usize {
        self.deepest.get()
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> usize {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a usize) -> Name {
        // The tree builder asks only for elements' names.
        let names = self.names.borrow();
        Name(names.get(*target).cloned().flatten().unwrap_or_else(|| {
            QualName::new(None, html5ever::ns!(html), html5ever::local_name!("div"))
        }))
    }

    fn create_element(&self, name: QualName, _: Vec<Attribute>, _: ElementFlags) -> usize {
        self.node(Some(name))
    }

    fn create_comment(&self, _: StrTendril) -> usize {
        self.node(None)
    }

    fn create_pi(&self, _: StrTendril, _: StrTendril) -> usize {
        self.node(None)
    }

    fn append(&self, parent: &usize, child: NodeOrText<usize>) {
        self.attach(*parent, &child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &usize,
        prev_element: &usize,
        child: NodeOrText<usize>,
    ) {
        let parent = self.parents.borrow().get(*element).copied().flatten();
        self.attach(parent.unwrap_or(*prev_element), &child);
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn get_template_contents(&self, target: &usize) -> usize {
        // The contents sit one level below the template.
        let contents = self.node(None);
        self.attach(*target, &NodeOrText::AppendNode(contents));
        contents
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &usize, new_node: NodeOrText<usize>) {
        let parent = self.parents.borrow().get(*sibling).copied().flatten();
        self.attach(parent.unwrap_or(0), &new_node);
    }

    fn add_attrs_if_missing(&self, _: &usize, _: Vec<Attribute>) {}

    fn remove_from_parent(&self, target: &usize) {
        self.parents.borrow_mut()[*target] = None;
    }

    fn reparent_children(&self, _node: &usize, _new_parent: &usize) {
        // Children move to a node one level deeper at most (the adoption agency's new
        // formatting element): not tracked per child, but the new parent's depth is
        // already counted, and its new children are one below it.
        let _ = self;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_the_tree_a_browser_builds() {
        let all = usize::MAX;
        assert_eq!(max_depth("<p>hi", all), 3, "html > body > p");
        let nested = format!("{}x", "<div>".repeat(100));
        assert_eq!(max_depth(&nested, all), 102);
        // `<p>` closes the `<p>` before it: 10,000 of them are siblings, not a tower.
        let siblings = "<p>a".repeat(10_000);
        assert_eq!(max_depth(&siblings, all), 3);
        let list = "<li>x".repeat(1000);
        assert!(max_depth(&format!("<ul>{list}</ul>"), all) <= 4);
        // Stopped once past the bound.
        let d = max_depth(&nested, 50);
        assert!(d > 50 && d <= 102, "{d}");
    }

    #[test]
    fn a_hundred_thousand_levels_are_measured_without_recursion_and_cut_short() {
        // On a 256 KiB stack: nothing in the measurement recurses per level.
        let deep = "<div><span>".repeat(50_000);
        let (small, whole) = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                (
                    max_depth(&deep[..22_000], usize::MAX),
                    max_depth(&deep, MAX_DOM_DEPTH),
                )
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(small >= 4_000, "{small}");
        // The whole tower is not parsed: one piece past the bound is enough.
        assert!(whole > MAX_DOM_DEPTH && whole < 5_000, "{whole}");
    }
}
