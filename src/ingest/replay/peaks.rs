//! Beat lists as `biofeedd beats` prints them and `biofeedd hrv` reads them: one sample index per
//! line, strictly increasing. Pure: text in, indices out.

use super::ReadError;
use std::path::Path;

/// Parse sample indices, one per line (blank lines ignored). `path` names the input in errors.
pub fn parse_peaks(text: &str, path: &Path) -> Result<Vec<usize>, ReadError> {
    let mut peaks: Vec<usize> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let field = line.trim();
        if field.is_empty() {
            continue;
        }
        let column = line.len() - line.trim_start().len() + 1;
        let at = |message: String| ReadError::Parse { path: path.to_path_buf(), line: i + 1, column, message };
        let v: usize = field.parse().map_err(|_| at(format!("`{field}` is not a sample index")))?;
        if peaks.last().is_some_and(|&p| v <= p) {
            return Err(at("peaks must be strictly increasing".into()));
        }
        peaks.push(v);
    }
    Ok(peaks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_one_per_line_in_order() {
        assert_eq!(parse_peaks("10\n\n 20\n30\n", Path::new("p")).unwrap(), vec![10, 20, 30]);
        let e = parse_peaks("10\n  x\n", Path::new("p")).unwrap_err().to_string();
        assert!(e.starts_with("p:2:3: `x` is not a sample index"), "{e}");
        let e = parse_peaks("10\n10\n", Path::new("p")).unwrap_err().to_string();
        assert!(e.contains("p:2:1: peaks must be strictly increasing"), "{e}");
        assert!(parse_peaks("-1\n", Path::new("p")).is_err());
    }
}
