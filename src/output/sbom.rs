//! `NAME.spdx.json`: the image's software bill of materials, an SPDX 2.3 JSON document.
//!
//! It names every Debian package the image was made from (version, architecture, the digest of
//! the `.deb`, its source package, a purl, the licence its copyright file declares) and the image
//! outputs, and says which outputs contain the packages. Like the manifest it is an output and
//! reproducible: the creation time is the image epoch, packages and outputs are sorted, and the
//! document namespace is derived from the document's own content.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Job, Output, OutputKind, Sink, Writer, Written};
use crate::base::error::Result;
use crate::base::hash::{digest_bytes, hex, parse_hex};
use crate::debian::copyright::{Extracted, idstring};
use crate::plan::{Plan, PlannedPackage};

const NOASSERTION: &str = "NOASSERTION";

/// `NAME.spdx.json`, for an image made of packages.
pub struct Sbom;

impl Writer for Sbom {
    fn kind(&self) -> OutputKind {
        OutputKind::Sbom
    }

    fn wanted(&self, plan: &Plan) -> bool {
        !plan.packages.is_empty() || plan.boot.is_some()
    }

    fn file(&self, plan: &Plan) -> String {
        format!("{}.spdx.json", plan.name)
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        let plan = job.plan;
        // A disk that boots by itself also holds its stage-1's packages and kernel, inside the
        // unified kernel image: each package once.
        let mut packages = plan.packages.clone();
        for extra in job.stage1.iter().flat_map(|s| &s.packages) {
            let same = |p: &PlannedPackage| p.package.sha256 == extra.package.sha256;
            if !packages.iter().any(same) {
                packages.push(extra.clone());
            }
        }
        job.write_text(out, &spdx_json(&plan.name, plan.epoch, &packages, &job.artifacts()))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: &'a str,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<ExtractedInfo<'a>>,
    relationships: Vec<Relationship>,
}

#[derive(Serialize)]
struct CreationInfo {
    comment: &'static str,
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supplier: Option<&'static str>,
    download_location: &'static str,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_info: Option<String>,
    license_concluded: &'static str,
    license_declared: String,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    primary_package_purpose: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractedInfo<'a> {
    license_id: &'a str,
    name: &'a str,
    extracted_text: &'a str,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

/// The SBOM's text (pretty JSON with a final newline).
fn spdx_json<'a>(image: &str, epoch: u64, packages: &'a [PlannedPackage], outputs: &[Output]) -> String {
    let mut packages: Vec<&PlannedPackage> = packages.iter().collect();
    packages.sort_by(|a, b| {
        let key = |p: &'a PlannedPackage| {
            let q = &p.package;
            (&q.name, &q.architecture, &q.version, &q.sha256, &q.source, &q.source_version)
        };
        key(a).cmp(&key(b))
    });
    let mut outputs: Vec<&Output> = outputs.iter().collect();
    outputs.sort_by(|a, b| a.file.cmp(&b.file).then(a.sha256.cmp(&b.sha256)));

    let mut ids = Ids::default();
    ids.claim("SPDXRef-DOCUMENT".to_string());
    let deb_ids: Vec<String> = packages
        .iter()
        .map(|p| ids.claim(format!("SPDXRef-deb-{}-{}", idstring(&p.package.name), idstring(&p.package.architecture))))
        .collect();
    let output_ids: Vec<String> =
        outputs.iter().map(|o| ids.claim(format!("SPDXRef-output-{}", idstring(&o.file)))).collect();

    let relationships = relationships(&outputs, &output_ids, &deb_ids);
    let mut spdx_packages: Vec<Package> = outputs.iter().zip(output_ids).map(|(o, id)| output_package(o, id)).collect();
    spdx_packages.extend(packages.iter().zip(deb_ids).map(|(p, id)| deb_package(p, id)));

    let mut document = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: image,
        document_namespace: String::new(),
        creation_info: CreationInfo {
            comment: "`created` is the image epoch (SOURCE_DATE_EPOCH), not the time of the build, \
                      so that the same inputs give the same document.",
            created: crate::base::time::iso8601(epoch),
            creators: vec![format!("Tool: bake-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages: spdx_packages,
        has_extracted_licensing_infos: extracted_licences(&packages),
        relationships,
    };
    // SPDX 2.3 (6.5) wants a URI unique to this document, and to each version of it. A digest
    // of everything else in the document is unique to the content, and reproducible where a
    // random UUID would not be. `.invalid` (RFC 2606) can never resolve, so the URI cannot be
    // mistaken for a place to fetch the document from, nor collide with anyone's real one.
    let content = serde_json::to_vec(&document).expect("the SBOM is plain data");
    document.document_namespace =
        format!("https://bake.invalid/spdx/{}-{}", percent_encode(image), hex(&digest_bytes(&content)));
    crate::base::json::pretty(&document)
}

/// Every relationship, sorted: the document describes each output, and each image contains
/// every package. With no image to hold them (a recipe with no `[initramfs]`), the document
/// describes the packages themselves, so that every element hangs off the document.
fn relationships(outputs: &[&Output], output_ids: &[String], deb_ids: &[String]) -> Vec<Relationship> {
    let mut relationships = BTreeSet::new();
    let relate = |from: &str, kind: &'static str, to: &str| Relationship {
        spdx_element_id: from.to_string(),
        relationship_type: kind,
        related_spdx_element: to.to_string(),
    };
    let mut contained = false;
    for (output, id) in outputs.iter().zip(output_ids) {
        relationships.insert(relate("SPDXRef-DOCUMENT", "DESCRIBES", id));
        if output.kind.is_image() {
            contained = true;
            relationships.extend(deb_ids.iter().map(|deb| relate(id, "CONTAINS", deb)));
        }
    }
    if !contained {
        relationships.extend(deb_ids.iter().map(|deb| relate("SPDXRef-DOCUMENT", "DESCRIBES", deb)));
    }
    relationships.into_iter().collect()
}

/// The licences the packages declare that SPDX does not list, each once. One id is one text
/// (the copyright module puts a digest of the text in the id), so the first of equal ids is as
/// good as any.
fn extracted_licences<'a>(packages: &[&'a PlannedPackage]) -> Vec<ExtractedInfo<'a>> {
    let mut extracted: BTreeMap<&str, &Extracted> = BTreeMap::new();
    for licence in packages.iter().filter_map(|p| p.license.as_ref()) {
        for info in &licence.extracted {
            extracted.entry(&info.id).or_insert(info);
        }
    }
    extracted.values().map(|e| ExtractedInfo { license_id: &e.id, name: &e.name, extracted_text: &e.text }).collect()
}

/// The SPDX package for an image output. SPDX 2.3 File elements would be the closer fit, but a
/// File must carry a SHA1 checksum (8.4), which bake does not compute; a Package with
/// `filesAnalyzed: false` needs only the SHA-256 we have.
fn output_package(output: &Output, spdx_id: String) -> Package {
    Package {
        spdx_id,
        name: output.file.clone(),
        version_info: None,
        package_file_name: Some(output.file.clone()),
        supplier: None,
        download_location: NOASSERTION,
        files_analyzed: false,
        checksums: vec![Checksum { algorithm: "SHA256", checksum_value: hex(&output.sha256) }],
        source_info: None,
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.to_string(),
        copyright_text: NOASSERTION,
        external_refs: Vec::new(),
        primary_package_purpose: purpose(output.kind),
    }
}

/// What an output is, as SPDX's primary package purpose (2.3, 7.24). The images (the initramfs,
/// a cpio archive of the image's files; the file system and the disk holding it) hold the
/// image's files, and so contain the packages: ARCHIVE. Anything else (the kernel) is one file,
/// copied whole out of a package: FILE. OPERATING-SYSTEM would describe the image as a whole,
/// but the SPDX 2.3 JSON schema spells it OPERATING_SYSTEM and the text OPERATING-SYSTEM (fixed
/// only in 2.3.1), so no spelling of it validates everywhere.
fn purpose(kind: OutputKind) -> &'static str {
    if kind.is_image() { "ARCHIVE" } else { "FILE" }
}

fn deb_package<'a>(p: &'a PlannedPackage, spdx_id: String) -> Package {
    let given = |text: &'a str, otherwise: &'a str| if text.is_empty() { otherwise } else { text };
    let source = given(&p.package.source, &p.package.name);
    let source_version = given(&p.package.source_version, &p.package.version);
    Package {
        spdx_id,
        name: p.package.name.clone(),
        version_info: (!p.package.version.is_empty()).then(|| p.package.version.clone()),
        package_file_name: None,
        // Who supplied a .deb (Debian, a derivative, a local repository) is not known here.
        supplier: Some(NOASSERTION),
        download_location: NOASSERTION,
        files_analyzed: false,
        checksums: parse_hex(&p.package.sha256)
            .map(|digest| Checksum { algorithm: "SHA256", checksum_value: hex(&digest) })
            .into_iter()
            .collect(),
        source_info: Some(format!("built from the Debian source package {source} {source_version}")),
        license_concluded: NOASSERTION,
        license_declared: p
            .license
            .as_ref()
            .map(|l| l.expression.clone())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| NOASSERTION.to_string()),
        copyright_text: NOASSERTION,
        external_refs: vec![ExternalRef {
            reference_category: "PACKAGE-MANAGER",
            reference_type: "purl",
            reference_locator: purl(p),
        }],
        // A guess from Debian's naming habit (policy 8.1 names shared library packages `libNAME`);
        // SPDX calls the field "a reasonable estimate".
        primary_package_purpose: if p.package.name.starts_with("lib") { "LIBRARY" } else { "APPLICATION" },
    }
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`, as the purl specification builds it: the deb type
/// lowercases the name, empty components are left out.
fn purl(p: &PlannedPackage) -> String {
    let mut purl = format!("pkg:deb/debian/{}", percent_encode(&p.package.name.to_lowercase()));
    if !p.package.version.is_empty() {
        purl.push('@');
        purl.push_str(&percent_encode(&p.package.version));
    }
    if !p.package.architecture.is_empty() {
        purl.push_str("?arch=");
        purl.push_str(&percent_encode(&p.package.architecture));
    }
    purl
}

/// Percent-encodes every byte but letters, digits, `.-_~` and `:`. That is the purl
/// specification's rule for names, versions and qualifier values (`:` is never encoded there,
/// so an epoch stays `1:2.3-1`; `+` becomes `%2B`), and it leaves only characters an RFC 3986
/// path segment allows.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~:".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The SPDX ids handed out so far, so that no two elements get the same one.
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    /// `wanted`, or if that is taken (`libstdc++6` and `libstdc--6` both give `libstdc--6`) the
    /// first free `wanted-2`, `wanted-3`, ... Callers claim in sorted order, so the same inputs
    /// always give the same ids.
    fn claim(&mut self, wanted: String) -> String {
        let mut id = wanted.clone();
        let mut n = 1;
        while !self.0.insert(id.clone()) {
            n += 1;
            id = format!("{wanted}-{n}");
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::hash::digest_bytes;
    use crate::debian::copyright::Declared;
    use crate::lockfile::LockedPackage;
    use serde_json::Value;

    fn deb(name: &str, version: &str, license: Option<Declared>) -> PlannedPackage {
        let package = LockedPackage {
            name: name.to_string(),
            version: version.to_string(),
            architecture: "amd64".to_string(),
            sha256: hex(&digest_bytes(name.as_bytes())),
            source: format!("{name}-src"),
            source_version: version.to_string(),
            filename: format!("pool/main/{name}_{version}_amd64.deb"),
            size: 4,
            archive: None,
            snapshot: None,
        };
        PlannedPackage { package, license }
    }

    fn output(file: &str) -> Output {
        let kind = if file.contains(".cpio") { OutputKind::Initramfs } else { OutputKind::Kernel };
        Output { kind, file: file.to_string(), size: 4, sha256: digest_bytes(file.as_bytes()), root_hash: None }
    }

    fn public_domain() -> Declared {
        Declared {
            expression: "GPL-2.0-or-later AND LicenseRef-public-domain-0123abcd".to_string(),
            extracted: vec![Extracted {
                id: "LicenseRef-public-domain-0123abcd".to_string(),
                name: "public-domain".to_string(),
                text: "This file is in the public domain.".to_string(),
            }],
        }
    }

    fn sample() -> (Vec<PlannedPackage>, Vec<Output>) {
        let packages = vec![
            deb(
                "libc6",
                "2.36-9+deb12u4",
                Some(Declared { expression: "LGPL-2.1-or-later".into(), extracted: vec![] }),
            ),
            deb("busybox", "1:1.35.0-4+b3", None),
            deb("tzdata", "2024a-0+deb12u1", Some(public_domain())),
            deb("zoneinfo-extra", "1.0", Some(public_domain())),
        ];
        (packages, vec![output("tiny.vmlinuz"), output("tiny.cpio.zst")])
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn is_idstring(id: &str, prefix: &str) -> bool {
        id.strip_prefix(prefix).is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
    }

    #[test]
    fn document_has_every_field_spdx_2_3_requires() {
        let (packages, outputs) = sample();
        let text = spdx_json("tiny", 1_700_000_000, &packages, &outputs);
        assert!(text.ends_with("}\n"));
        let doc = parse(&text);
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["dataLicense"], "CC0-1.0");
        assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
        assert_eq!(doc["name"], "tiny");
        let namespace = doc["documentNamespace"].as_str().unwrap();
        assert!(namespace.starts_with("https://bake.invalid/spdx/tiny-") && !namespace.contains('#'), "{namespace}");
        assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(doc["creationInfo"]["creators"][0], format!("Tool: bake-{}", env!("CARGO_PKG_VERSION")));

        let elements = doc["packages"].as_array().unwrap();
        assert_eq!(elements.len(), 6);
        let mut ids = BTreeSet::new();
        for element in elements {
            let id = element["SPDXID"].as_str().unwrap();
            assert!(is_idstring(id, "SPDXRef-"), "{id}");
            assert!(ids.insert(id), "{id} twice");
            assert!(element["name"].is_string() && element["downloadLocation"].is_string());
            assert_eq!(element["filesAnalyzed"], false);
            assert_eq!(element["checksums"][0]["algorithm"], "SHA256");
            let value = element["checksums"][0]["checksumValue"].as_str().unwrap();
            assert!(value.len() == 64 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        let busybox = elements.iter().find(|e| e["name"] == "busybox").unwrap();
        assert_eq!(busybox["SPDXID"], "SPDXRef-deb-busybox-amd64");
        assert_eq!(busybox["versionInfo"], "1:1.35.0-4+b3");
        assert_eq!(busybox["licenseDeclared"], "NOASSERTION");
        assert_eq!(busybox["sourceInfo"], "built from the Debian source package busybox-src 1:1.35.0-4+b3");
        assert_eq!(busybox["primaryPackagePurpose"], "APPLICATION");
        assert_eq!(busybox["externalRefs"][0]["referenceCategory"], "PACKAGE-MANAGER");
        assert_eq!(busybox["externalRefs"][0]["referenceType"], "purl");
        let libc = elements.iter().find(|e| e["name"] == "libc6").unwrap();
        assert_eq!(libc["licenseDeclared"], "LGPL-2.1-or-later");
        assert_eq!(libc["primaryPackagePurpose"], "LIBRARY");
        let cpio = elements.iter().find(|e| e["name"] == "tiny.cpio.zst").unwrap();
        assert_eq!(cpio["SPDXID"], "SPDXRef-output-tiny.cpio.zst");
        assert_eq!(cpio["packageFileName"], "tiny.cpio.zst");
        assert_eq!(cpio["primaryPackagePurpose"], "ARCHIVE");
        assert_eq!(cpio["checksums"][0]["checksumValue"], hex(&digest_bytes(b"tiny.cpio.zst")));

        for relationship in doc["relationships"].as_array().unwrap() {
            for end in ["spdxElementId", "relatedSpdxElement"] {
                let id = relationship[end].as_str().unwrap();
                assert!(id == "SPDXRef-DOCUMENT" || ids.contains(id), "{id} is no element");
            }
        }
        for info in doc["hasExtractedLicensingInfos"].as_array().unwrap() {
            assert!(is_idstring(info["licenseId"].as_str().unwrap(), "LicenseRef-"));
            assert!(info["extractedText"].is_string());
        }
        assert!(!text.contains("null"));
    }

    #[test]
    fn the_archive_contains_the_packages_and_the_document_describes_the_outputs() {
        let (packages, outputs) = sample();
        let doc = parse(&spdx_json("tiny", 0, &packages, &outputs));
        let relationships: Vec<String> = doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!("{} {} {}", r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]).replace('"', "")
            })
            .collect();
        assert_eq!(
            relationships,
            [
                "SPDXRef-DOCUMENT DESCRIBES SPDXRef-output-tiny.cpio.zst",
                "SPDXRef-DOCUMENT DESCRIBES SPDXRef-output-tiny.vmlinuz",
                "SPDXRef-output-tiny.cpio.zst CONTAINS SPDXRef-deb-busybox-amd64",
                "SPDXRef-output-tiny.cpio.zst CONTAINS SPDXRef-deb-libc6-amd64",
                "SPDXRef-output-tiny.cpio.zst CONTAINS SPDXRef-deb-tzdata-amd64",
                "SPDXRef-output-tiny.cpio.zst CONTAINS SPDXRef-deb-zoneinfo-extra-amd64",
            ]
        );
        let doc = parse(&spdx_json("tiny", 0, &packages, &[]));
        assert_eq!(doc["relationships"].as_array().unwrap().len(), 4);
        assert!(doc["relationships"].as_array().unwrap().iter().all(|r| r["relationshipType"] == "DESCRIBES"));
    }

    #[test]
    fn same_inputs_give_the_same_bytes_in_any_order() {
        let (mut packages, mut outputs) = sample();
        let first = spdx_json("tiny", 1_700_000_000, &packages, &outputs);
        assert_eq!(spdx_json("tiny", 1_700_000_000, &packages, &outputs), first);
        packages.reverse();
        outputs.reverse();
        assert_eq!(spdx_json("tiny", 1_700_000_000, &packages, &outputs), first);
    }

    #[test]
    fn another_epoch_is_another_created_time_and_namespace() {
        let (packages, outputs) = sample();
        let one = parse(&spdx_json("tiny", 1_700_000_000, &packages, &outputs));
        let two = parse(&spdx_json("tiny", 1_700_000_001, &packages, &outputs));
        assert_eq!(two["creationInfo"]["created"], "2023-11-14T22:13:21Z");
        assert_ne!(one["creationInfo"]["created"], two["creationInfo"]["created"]);
        assert_ne!(one["documentNamespace"], two["documentNamespace"]);
    }

    #[test]
    fn content_changes_change_the_namespace() {
        let (mut packages, outputs) = sample();
        let namespace =
            |packages: &[PlannedPackage]| parse(&spdx_json("tiny", 0, packages, &outputs))["documentNamespace"].clone();
        let before = namespace(&packages);
        packages[0].package.sha256 = hex(&digest_bytes(b"another build"));
        assert_ne!(namespace(&packages), before);
        let doc = parse(&spdx_json("my image#1", 0, &packages, &outputs));
        assert!(doc["documentNamespace"].as_str().unwrap().starts_with("https://bake.invalid/spdx/my%20image%231-"));
    }

    #[test]
    fn purl_percent_encodes_per_the_purl_spec() {
        let mut p = deb("libstdc++6", "1:12.2.0-14+deb12u1~bpo", None);
        assert_eq!(purl(&p), "pkg:deb/debian/libstdc%2B%2B6@1:12.2.0-14%2Bdeb12u1~bpo?arch=amd64");
        p.package.architecture = String::new();
        p.package.version = String::new();
        assert_eq!(purl(&p), "pkg:deb/debian/libstdc%2B%2B6");
        let doc = parse(&spdx_json("tiny", 0, &[deb("bash", "5.2.15-2+b7", None)], &[]));
        assert_eq!(
            doc["packages"][0]["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64"
        );
    }

    #[test]
    fn licence_refs_are_declared_once_each() {
        let (packages, outputs) = sample();
        let doc = parse(&spdx_json("tiny", 0, &packages, &outputs));
        let infos = doc["hasExtractedLicensingInfos"].as_array().unwrap();
        assert_eq!(infos.len(), 1, "tzdata and zoneinfo-extra share one");
        assert_eq!(infos[0]["licenseId"], "LicenseRef-public-domain-0123abcd");
        assert_eq!(infos[0]["name"], "public-domain");
        assert_eq!(infos[0]["extractedText"], "This file is in the public domain.");
        let tzdata = doc["packages"].as_array().unwrap().iter().find(|e| e["name"] == "tzdata").unwrap();
        assert_eq!(tzdata["licenseDeclared"], "GPL-2.0-or-later AND LicenseRef-public-domain-0123abcd");
        let none = parse(&spdx_json("tiny", 0, &packages[..2], &outputs));
        assert!(none.get("hasExtractedLicensingInfos").is_none());
    }

    #[test]
    fn ids_are_idstrings_and_never_collide() {
        let packages = [deb("libstdc++6", "12", None), deb("libstdc--6", "12", None), deb("libstdc++6", "13", None)];
        let doc = parse(&spdx_json("tiny", 0, &packages, &[output("a+b.cpio"), output("a-b.cpio")]));
        let ids: Vec<&str> =
            doc["packages"].as_array().unwrap().iter().map(|e| e["SPDXID"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "SPDXRef-output-a-b.cpio",
                "SPDXRef-output-a-b.cpio-2",
                "SPDXRef-deb-libstdc--6-amd64",
                "SPDXRef-deb-libstdc--6-amd64-2",
                "SPDXRef-deb-libstdc--6-amd64-3",
            ]
        );
        assert_eq!(idstring("libstdc++6"), "libstdc--6");
        assert_eq!(idstring("a b/ü"), "a-b--");
    }
}
