//! Result rows and tables.

/// One line of the summary: a measured number next to the target and HAPI's.
#[derive(Clone, Debug)]
pub struct Row {
    pub bench: &'static str,
    pub metric: String,
    pub value: String,
    pub target: String,
    pub hapi: String,
}

impl Row {
    pub fn new(
        bench: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: &str,
        hapi: &str,
    ) -> Row {
        Row {
            bench,
            metric: metric.into(),
            value: value.into(),
            target: target.into(),
            hapi: hapi.into(),
        }
    }
}

/// Prints rows as an aligned table.
pub fn print_table(title: &str, rows: &[Row]) {
    let headers = ["bench", "metric", "measured", "target", "HAPI"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.bench.to_string(),
                r.metric.clone(),
                r.value.clone(),
                r.target.clone(),
                r.hapi.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for c in &cells {
        for (w, v) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(v.chars().count());
        }
    }
    println!();
    println!("== {title} ==");
    let line = |vals: [&str; 5]| {
        let mut out = String::new();
        for (i, v) in vals.iter().enumerate() {
            out.push_str("| ");
            out.push_str(v);
            out.push_str(&" ".repeat(widths[i] - v.chars().count() + 1));
        }
        out.push('|');
        println!("{out}");
    };
    line(headers);
    let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line([&sep[0], &sep[1], &sep[2], &sep[3], &sep[4]]);
    for c in &cells {
        line([&c[0], &c[1], &c[2], &c[3], &c[4]]);
    }
}
