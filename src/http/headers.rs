//! Headers every answer carries. Answers of this service carry payment data (payments, refunds,
//! billing keys, events, problems that name them), so none may be stored by a browser or a
//! shared cache, nor sniffed as another content type; Swagger UI may not be framed.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Where Swagger UI is served (`http::router`).
pub const SWAGGER_UI: &str = "/swagger-ui";

pub async fn secure(request: Request, next: Next) -> Response {
    let framed_page = request.uri().path().starts_with(SWAGGER_UI);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if framed_page {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}
