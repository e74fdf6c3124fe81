//! "Did you mean ...?": the known names closest to a name that was not found, for messages.

/// ` (did you mean `a`, `b`?)` with up to three known names close to `name`, or nothing.
pub fn did_you_mean<K: AsRef<str> + Ord>(name: &str, known: impl Iterator<Item = K>) -> String {
    let mut scored: Vec<(usize, K)> = known.map(|k| (distance(name, k.as_ref()), k)).collect();
    scored.sort();
    let close: Vec<String> = scored
        .iter()
        .take_while(|(d, _)| *d <= name.len().max(3) / 2)
        .take(3)
        .map(|(_, k)| format!("`{}`", k.as_ref()))
        .collect();
    if close.is_empty() { String::new() } else { format!(" (did you mean {}?)", close.join(", ")) }
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb { previous } else { 1 + previous.min(row[j]).min(current) };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let known = ["virtio_blk", "virtio_net", "erofs"];
        assert_eq!(did_you_mean("virtio_blkk", known.iter()), " (did you mean `virtio_blk`, `virtio_net`?)");
        assert_eq!(did_you_mean("zzzzzzzzzz", known.iter()), "");
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
