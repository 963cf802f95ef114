// The web dashboard of a one-machine mesh: a read-only JSON API over what the sidecars and the
// identity service report, an event stream, and a page that reads only that API. Reads runtime.json,
// admin endpoints and, when the identity service reports no issuer, the CA certificate files it
// serves from (never a key); never changes the mesh, never loads anything from the internet.

export { createDashboardChecks, type DashboardChecks, type TimedReport } from './checks.ts';
export { collectSnapshot, type Snapshot } from './collect.ts';
export { createDashboard, type Dashboard, type DashboardConfig } from './server.ts';
export {
  certificatesView,
  checksView,
  type EdgeRow,
  edgesView,
  expiryStatus,
  overviewView,
  policyView,
} from './views.ts';
