//! XML answers read into an owned tree, for providers whose vendors speak
//! XML (Plesk's XML API, EPP registries, Enom).
//!
//! Parsing refuses a document type declaration (roxmltree's default), so
//! an answer cannot expand entities or reach for external ones.

/// An element: its name, namespace, attributes, text and child elements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Xml {
    /// The local name.
    pub name: String,
    /// The namespace URI, if any.
    pub namespace: Option<String>,
    /// Attributes (local name, value).
    pub attributes: Vec<(String, String)>,
    /// The element's own text, trimmed.
    pub text: String,
    /// Child elements, in order.
    pub children: Vec<Xml>,
}

impl Xml {
    /// Parses a document; answers its root element.
    pub fn parse(text: &str) -> Result<Xml, roxmltree::Error> {
        let document = roxmltree::Document::parse(text)?;
        Ok(Xml::from_node(document.root_element()))
    }

    fn from_node(node: roxmltree::Node<'_, '_>) -> Xml {
        Xml {
            name: node.tag_name().name().to_owned(),
            namespace: node.tag_name().namespace().map(str::to_owned),
            attributes: node.attributes().map(|a| (a.name().to_owned(), a.value().to_owned())).collect(),
            text: node
                .children()
                .filter(|c| c.is_text())
                .filter_map(|c| c.text())
                .collect::<String>()
                .trim()
                .to_owned(),
            children: node.children().filter(roxmltree::Node::is_element).map(Xml::from_node).collect(),
        }
    }

    /// The first child element named `name`.
    pub fn child(&self, name: &str) -> Option<&Xml> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child element named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Xml> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a path of child names.
    pub fn path(&self, path: &[&str]) -> Option<&Xml> {
        path.iter().try_fold(self, |node, name| node.child(name))
    }

    /// The text at a path of child names; empty when absent.
    pub fn at(&self, path: &[&str]) -> &str {
        self.path(path).map_or("", |node| node.text.as_str())
    }

    /// An attribute's value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Text escaped for an XML element's content (`&`, `<`, `>`).
pub fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::partial_escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_into_trees_and_doctypes_are_refused() {
        let xml = Xml::parse(r#"<a xmlns="urn:x"><b code="1">one</b><b>two</b><c><d>deep</d></c></a>"#).unwrap();
        assert_eq!(xml.namespace.as_deref(), Some("urn:x"));
        assert_eq!(xml.all("b").count(), 2);
        assert_eq!(xml.child("b").unwrap().attribute("code"), Some("1"));
        assert_eq!(xml.at(&["c", "d"]), "deep");
        assert_eq!(xml.at(&["c", "missing"]), "");
        assert!(Xml::parse(r#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#).is_err());
        assert_eq!(esc("a<b&c"), "a&lt;b&amp;c");
    }
}
