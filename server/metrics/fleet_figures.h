// The fleet's latest figures as the Prometheus exporter reads them: one sample
// per metric series (database, metric, labels), the newest stored, and a delta
// metric's running total. The metric store implements it; the exporter only
// reads through it, on every scrape.
#ifndef ECLIPTIX_SERVER_METRICS_FLEET_FIGURES_H_
#define ECLIPTIX_SERVER_METRICS_FLEET_FIGURES_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/labels.h"

namespace ecliptix::server {

// The newest sample of one series.
struct LatestSample {
  // The database whose agent reported it.
  std::string database_id;
  // snake_case, e.g. "procedure_calls", "table_rows".
  std::string metric;
  // The sample's own labels, e.g. {procedure: "SP_Login"}; not the database's.
  Labels labels;
  double value = 0;
  // When the agent took it.
  absl::Time time;
  // A delta metric's series (calls, errors): `total` is the sum of every
  // amount stored for it, a counter that only grows.
  bool counter = false;
  double total = 0;
};

class FleetFigures {
 public:
  virtual ~FleetFigures() = default;
  // Every series' newest sample, in no particular order. Called on every
  // scrape from the HTTP server's threads: must be thread-safe, should be
  // cheap (served from memory rather than a query over the whole history),
  // and must not call back into the exporter.
  virtual std::vector<LatestSample> Latest() const = 0;
};

}  // namespace ecliptix::server

#endif  // ECLIPTIX_SERVER_METRICS_FLEET_FIGURES_H_
