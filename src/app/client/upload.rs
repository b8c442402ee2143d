//! File uploads from the browser: one `POST /files` per file over `XMLHttpRequest`, which
//! (unlike `fetch`) reports upload progress.

use crate::app::percent::encode_path_segment;
use crate::chat::model::Attachment;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{ProgressEvent, XmlHttpRequest};

/// Uploads a file for a room (`query` is `channel=…` or `peer=…`), reporting progress as
/// a fraction and then the stored attachment or the reason it was refused.
pub fn upload(
    file: web_sys::File,
    query: String,
    token: String,
    on_progress: impl Fn(f64) + 'static,
    on_done: impl FnOnce(Result<Attachment, String>) + 'static,
) {
    let fail = |e: JsValue| format!("The upload could not start: {e:?}");
    let request = match XmlHttpRequest::new() {
        Ok(request) => request,
        Err(e) => return on_done(Err(fail(e))),
    };
    let start = (|| -> Result<(), JsValue> {
        request.open("POST", &format!("/files?{query}"))?;
        request.set_request_header("Authorization", &format!("Bearer {token}"))?;
        request.set_request_header("X-File-Name", &encode_path_segment(&file.name()))?;
        Ok(())
    })();
    if let Err(e) = start {
        return on_done(Err(fail(e)));
    }
    let progress = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let event: ProgressEvent = event.unchecked_into();
        if event.length_computable() && event.total() > 0.0 {
            on_progress(event.loaded() / event.total());
        }
    });
    if let Ok(upload) = request.upload() {
        upload.set_onprogress(Some(progress.as_ref().unchecked_ref()));
    }
    let finished = request.clone();
    // Runs once, when the request ends either way; it owns the progress callback so that
    // both are freed then.
    let on_end = Closure::once_into_js(move |_: JsValue| {
        let _progress = progress;
        let status = finished.status().unwrap_or(0);
        let text = finished.response_text().ok().flatten().unwrap_or_default();
        let result = if status == 200 {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            #[derive(serde::Deserialize)]
            struct Refusal {
                message: String,
            }
            Err(serde_json::from_str::<Refusal>(&text)
                .map(|r| r.message)
                .unwrap_or_else(|_| "The upload failed.".to_owned()))
        };
        on_done(result);
    });
    request.set_onloadend(Some(on_end.unchecked_ref()));
    if let Err(e) = request.send_with_opt_blob(Some(&file)) {
        leptos::logging::warn!("upload failed to start: {e:?}");
    }
}
