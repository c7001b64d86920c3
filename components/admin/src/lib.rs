//! The `admin` component: users (list, read, change roles, disable,
//! delete) and the audit trail, for callers with the `admin` role. It
//! routes each request to a use case in `spin-auth-core`; nothing else.

use spin_auth_core::admin::AdminService;
use spin_auth_core::admin::handlers as admin;
use spin_auth_core::component::serve;
use spin_auth_core::error::ApiError;
use spin_auth_core::http::{Request, Response};
use spin_auth_core::routing::{ADMIN_ROUTES, AdminOp, route};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(request: IncomingRequest, outparam: ResponseOutparam) {
    serve(request, outparam, handle_request).await;
}

fn handle_request(request: Request) -> Result<Response, ApiError> {
    let (operation, params) = route(ADMIN_ROUTES, &request.method, &request.path)?;
    let service = AdminService::from_spin()?;
    match operation {
        AdminOp::ListUsers => admin::list_users(&service, &request),
        AdminOp::GetUser => admin::get_user(&service, &request, &params[0]),
        AdminOp::ChangeUser => admin::change_user(&service, &request, &params[0]),
        AdminOp::DeleteUser => admin::delete_user(&service, &request, &params[0]),
        AdminOp::ListAudit => admin::list_audit(&service, &request),
    }
}
