//! The HTML pages: plain server-rendered markup, one small script on the job page that
//! polls `GET /api/jobs/{id}` and fills in what the job produced (with `textContent`,
//! so nothing from an upload is ever parsed as HTML). Style and script are served as
//! files (`/static/portal.css`, `/static/job.js`): the Content-Security-Policy allows
//! nothing inline.

use std::fmt::Write;

use axum::http::StatusCode;

use crate::jobs::JobView;
use crate::{BackendStatus, ModelInfo, PortalConfig, human_bytes};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The pages' style sheet (`/static/portal.css`).
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;font-size:.92em}\
th{background:#f3f3f3}.note{background:#fff8e0;border:1px solid #e8d48a;padding:.6em}.err{background:#fde8e8;border:1px solid #e99;padding:.6em}\
.ok{color:#176d2c}code{background:#f3f3f3;padding:0 .2em}form p{margin:.6em 0}img{max-width:100%;border:1px solid #ddd}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <link rel=\"stylesheet\" href=\"/static/portal.css\"></head>\
         <body>{body}<hr><p><small>crossomics {} &middot; <a href=\"/\">home</a> &middot; \
         <a href=\"/api/openapi.json\">API (OpenAPI)</a></small></p></body></html>",
        esc(title),
        env!("CARGO_PKG_VERSION")
    )
}

/// The start page: device, the models, the upload form (its first field the CSRF token
/// for the cookie the page is sent with).
pub fn index(
    models: &[ModelInfo],
    status: &BackendStatus,
    config: &PortalConfig,
    csrf_token: &str,
) -> String {
    let mut b = String::new();
    b.push_str("<h1>crossomics: predict the other modality</h1>");
    b.push_str(
        "<p>Upload single-cell data of one modality (RNA counts or ATAC peak counts) and \
         download the other, predicted by a trained translator.</p>",
    );
    let _ = write!(
        b,
        "<p>Predictions run on <b id=\"device\">{}</b>.</p>",
        esc(&status.device)
    );
    if let Some(m) = &status.message {
        let _ = write!(b, "<p class=\"note\" id=\"message\">{}</p>", esc(m));
    }
    b.push_str("<h2>Models</h2>");
    if models.is_empty() {
        b.push_str("<p id=\"no-models\">No model is available yet.</p>");
    } else {
        b.push_str(
            "<table id=\"models\"><tr><th>model</th><th>direction</th><th>genome</th>\
             <th>trained on</th><th>features in &rarr; out</th><th>test metrics</th></tr>",
        );
        for m in models {
            let metrics: Vec<String> = m
                .metrics
                .iter()
                .map(|(k, v)| format!("{} {v:.3}", esc(k)))
                .collect();
            let _ = write!(
                b,
                "<tr><td><code>{}</code><br>{}</td><td>{} &rarr; {}</td><td>{}</td><td>{}</td>\
                 <td>{} &rarr; {}</td><td>{}</td></tr>",
                esc(&m.id),
                esc(&m.kind),
                esc(&m.source),
                esc(&m.target),
                esc(m.genome.as_deref().unwrap_or("-")),
                esc(&m.trained_on),
                m.input_features,
                m.output_features,
                metrics.join(", ")
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Upload</h2>");
    let disabled = if status.ready && !models.is_empty() {
        ""
    } else {
        " disabled"
    };
    b.push_str(
        "<form id=\"upload\" action=\"/jobs\" method=\"post\" enctype=\"multipart/form-data\">",
    );
    let _ = write!(
        b,
        "<input type=\"hidden\" name=\"csrf\" id=\"csrf\" value=\"{}\">",
        esc(csrf_token)
    );
    b.push_str("<p><label>Model <select name=\"model\" id=\"model\">");
    for m in models {
        let _ = write!(
            b,
            "<option value=\"{}\">{} &rarr; {}: {}</option>",
            esc(&m.id),
            esc(&m.source),
            esc(&m.target),
            esc(&m.name)
        );
    }
    b.push_str("</select></label></p>");
    b.push_str(
        "<p><label>Genome build of the peaks (ATAC uploads) <select name=\"genome\" id=\"genome\">\
         <option value=\"\">as the model</option><option>GRCh38</option><option>hg19</option><option>mm10</option><option>GRCm39</option>\
         </select></label></p>",
    );
    let _ = write!(
        b,
        "<p><label>Data <input type=\"file\" name=\"file\" id=\"file\" multiple required></label><br>\
         <small>An <code>.h5ad</code> (raw counts in <code>X</code>), a 10x <code>.h5</code> matrix, \
         a 10x matrix folder as <code>.zip</code> or <code>.tar.gz</code>, or its \
         <code>matrix.mtx</code> with <code>features.tsv</code> and <code>barcodes.tsv</code> \
         (select all three). At most {}.</small></p>",
        human_bytes(config.max_upload_bytes)
    );
    let _ = write!(
        b,
        "<p><button type=\"submit\" id=\"submit\"{disabled}>Predict</button></p></form>"
    );
    let mut html = page("crossomics portal", &b);
    if !status.ready {
        // reload while the default models train
        html = html.replace(
            "<head>",
            "<head><meta http-equiv=\"refresh\" content=\"5\">",
        );
    }
    html
}

/// A job's page; the script fills it in from the API until the job is finished.
pub fn job(v: &JobView) -> String {
    let id = esc(&v.id);
    let body = format!(
        "<h1>Job <code id=\"job-id\">{id}</code></h1>\
         <table><tr><th>model</th><td id=\"job-model\">{}</td></tr>\
         <tr><th>input</th><td>{} ({})</td></tr>\
         <tr><th>device</th><td id=\"job-device\">{}</td></tr>\
         <tr><th>status</th><td><b id=\"status\">{}</b> <span id=\"seconds\"></span></td></tr></table>\
         <div id=\"error\"></div><h2>Feature coverage</h2><p id=\"coverage\">not known yet</p>\
         <h2>Results</h2><ul id=\"files\"></ul><div id=\"picture\"></div>\
         <h2>Summary</h2><table id=\"summary\"></table><table id=\"top\"></table>\
         <script src=\"/static/job.js\"></script>",
        esc(&v.model),
        esc(&v.input),
        human_bytes(v.upload_bytes),
        esc(&v.device),
        serde_json::to_value(v.status)
            .ok()
            .and_then(|s| s.as_str().map(str::to_string))
            .unwrap_or_default(),
    );
    page(&format!("job {}", v.id), &body)
}

/// The job page's script (`/static/job.js`); the job's id is the page's `#job-id`.
pub const SCRIPT: &str = r#"
const $ = (x) => document.getElementById(x);
const id = $("job-id").textContent;
function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const k in (attrs || {})) e.setAttribute(k, attrs[k]);
  return e;
}
function row(table, k, v) {
  const tr = el("tr"); tr.appendChild(el("th", k)); tr.appendChild(el("td", v)); table.appendChild(tr);
}
function show(j) {
  $("status").textContent = j.status;
  $("status").className = j.status === "done" ? "ok" : "";
  if (j.seconds !== null) $("seconds").textContent = "(" + j.seconds.toFixed(1) + " s)";
  if (j.error) { $("error").className = "err"; $("error").textContent = j.error; }
  if (j.coverage) {
    const c = j.coverage;
    $("coverage").textContent = c.found + " of the model's " + c.total + " " +
      (c.modality === "RNA" ? "genes" : "peaks") + " are in the upload (" + (100 * c.fraction).toFixed(1) + "%)";
  }
  const files = $("files"); files.textContent = "";
  for (const f of j.files) {
    if (f.media_type.startsWith("image/")) {
      const p = $("picture"); p.textContent = "";
      p.appendChild(el("h3", f.label)); p.appendChild(el("img", undefined, { src: f.url, alt: f.label, id: "embedding" }));
      continue;
    }
    const li = el("li"); const a = el("a", f.label, { href: f.url, download: f.name, class: "download" });
    li.appendChild(a); li.appendChild(document.createTextNode(" (" + f.name + ", " + f.bytes + " bytes)")); files.appendChild(li);
  }
  if (j.summary) {
    const s = j.summary, t = $("summary"); t.textContent = "";
    row(t, "cells", s.cells); row(t, "predicted features", s.features); row(t, "values", s.values);
    row(t, "mean", s.mean.toPrecision(4)); row(t, "min", s.min.toPrecision(4)); row(t, "max", s.max.toPrecision(4));
    const top = $("top"); top.textContent = "";
    const h = el("tr"); h.appendChild(el("th", "highest mean prediction")); h.appendChild(el("th", "mean")); top.appendChild(h);
    for (const f of s.top_features) row(top, f.feature, f.mean.toPrecision(4));
  }
}
async function poll() {
  try {
    const r = await fetch("/api/jobs/" + id);
    if (!r.ok) { $("status").textContent = "unknown or expired"; return; }
    const j = await r.json();
    show(j);
    if (j.status === "done" || j.status === "failed") return;
  } catch (e) { /* the server may be busy: try again */ }
  setTimeout(poll, 500);
}
poll();
"#;

/// An error page (for the form; the API answers JSON).
pub fn error(status: StatusCode, message: &str) -> String {
    page(
        "crossomics: error",
        &format!(
            "<h1>{} {}</h1><p class=\"err\" id=\"error\">{}</p><p><a href=\"/\">back</a></p>",
            status.as_u16(),
            esc(status.canonical_reason().unwrap_or("")),
            esc(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn index_escapes_model_fields() {
        let m = ModelInfo {
            id: "m1".into(),
            name: "<script>".into(),
            direction: "rna_to_atac".into(),
            source: "RNA".into(),
            target: "ATAC".into(),
            genome: Some("GRCh38".into()),
            trained_on: "x & y".into(),
            kind: "babel".into(),
            input_features: 3,
            output_features: 4,
            metrics: vec![("auroc".into(), 0.75)],
        };
        let s = BackendStatus {
            device: "cpu".into(),
            ready: true,
            message: None,
        };
        let html = index(&[m], &s, &PortalConfig::default(), "t0k\"en");
        assert!(!html.contains("<script>"));
        assert!(
            html.contains("&lt;script&gt;")
                && html.contains("x &amp; y")
                && html.contains("auroc 0.750")
        );
        assert!(html.contains("At most 2.0 GiB"));
        // the token first in the form, escaped; nothing inline for the CSP to allow
        assert!(html.contains(
            "enctype=\"multipart/form-data\"><input type=\"hidden\" name=\"csrf\" id=\"csrf\" value=\"t0k&quot;en\">"
        ));
        assert!(!html.contains("<style") && !html.contains("<script"));
        assert!(!html.contains("http-equiv=\"refresh\""));
    }
}
