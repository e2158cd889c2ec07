#include "tests/client/fake_rollout_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ecliptix::testing {

using fleet::v1::Rollout;
using fleet::v1::RolloutEvent;

void FakeRolloutService::SetRollout(Rollout rollout) {
  absl::MutexLock lock(&mutex_);
  rollout_ = std::move(rollout);
}

void FakeRolloutService::SetPlan(fleet::v1::RolloutPlan plan) {
  absl::MutexLock lock(&mutex_);
  plan_ = std::move(plan);
}

void FakeRolloutService::SetListed(std::vector<Rollout> rollouts) {
  absl::MutexLock lock(&mutex_);
  listed_ = std::move(rollouts);
}

void FakeRolloutService::SetError(std::optional<grpc::Status> error) {
  absl::MutexLock lock(&mutex_);
  error_ = std::move(error);
}

void FakeRolloutService::SetEvents(std::vector<RolloutEvent> events,
                                   int64_t snapshot_sequence, bool end_ok) {
  absl::MutexLock lock(&mutex_);
  events_ = std::move(events);
  snapshot_sequence_ = snapshot_sequence;
  end_ok_ = end_ok;
}

void FakeRolloutService::DropFirstWatchAfter(int messages) {
  absl::MutexLock lock(&mutex_);
  drop_first_watch_after_ = messages;
}

void FakeRolloutService::SetResumeOverlap(int overlap) {
  absl::MutexLock lock(&mutex_);
  resume_overlap_ = overlap;
}

void FakeRolloutService::SetResumeSkipsOne(bool skip) {
  absl::MutexLock lock(&mutex_);
  resume_skips_one_ = skip;
}

void FakeRolloutService::SetWatchUnavailable(bool unavailable) {
  absl::MutexLock lock(&mutex_);
  watch_unavailable_ = unavailable;
}

FakeRolloutService::Calls FakeRolloutService::calls() const {
  absl::MutexLock lock(&mutex_);
  return calls_;
}

std::optional<grpc::Status> FakeRolloutService::Begin(
    const char* method, const std::string& rollout_id) {
  calls_.methods.push_back(method);
  if (error_) return error_;
  if (!rollout_id.empty() && rollout_id != rollout_.rollout_id()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("rollout \"", rollout_id, "\" not found"));
  }
  return std::nullopt;
}

grpc::Status FakeRolloutService::CreateRollout(
    grpc::ServerContext*, const fleet::v1::CreateRolloutRequest* request,
    Rollout* response) {
  absl::MutexLock lock(&mutex_);
  calls_.create = *request;
  if (auto error = Begin("CreateRollout", "")) return *error;
  *response = rollout_;
  return grpc::Status::OK;
}

grpc::Status FakeRolloutService::PlanRollout(
    grpc::ServerContext* context,
    const fleet::v1::CreateRolloutRequest* request,
    fleet::v1::RolloutPlan* response) {
  absl::MutexLock lock(&mutex_);
  calls_.plan = *request;
  calls_.plan_deadline = absl::FromChrono(context->deadline()) - absl::Now();
  if (auto error = Begin("PlanRollout", "")) return *error;
  *response = plan_;
  return grpc::Status::OK;
}

grpc::Status FakeRolloutService::GetRollout(
    grpc::ServerContext*, const fleet::v1::GetRolloutRequest* request,
    Rollout* response) {
  absl::MutexLock lock(&mutex_);
  if (auto error = Begin("GetRollout", request->rollout_id())) return *error;
  *response = rollout_;
  return grpc::Status::OK;
}

grpc::Status FakeRolloutService::ListRollouts(
    grpc::ServerContext*, const fleet::v1::ListRolloutsRequest* request,
    fleet::v1::ListRolloutsResponse* response) {
  absl::MutexLock lock(&mutex_);
  calls_.lists.push_back(*request);
  if (auto error = Begin("ListRollouts", "")) return *error;
  size_t offset = 0;
  if (!request->page_token().empty() &&
      !absl::SimpleAtoi(request->page_token(), &offset)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad page token");
  }
  std::vector<const Rollout*> matches;
  for (const Rollout& rollout : listed_) {
    const bool wanted =
        request->states().empty() ||
        std::find(request->states().begin(), request->states().end(),
                  rollout.state()) != request->states().end();
    if (wanted) matches.push_back(&rollout);
  }
  const size_t page_size = request->page_size() > 0 ? request->page_size() : 2;
  for (size_t i = offset; i < matches.size() && i < offset + page_size; ++i) {
    Rollout* out = response->add_rollouts();
    *out = *matches[i];
    out->clear_targets();
  }
  if (offset + page_size < matches.size()) {
    response->set_next_page_token(absl::StrCat(offset + page_size));
  }
  return grpc::Status::OK;
}

grpc::Status FakeRolloutService::WatchRollout(
    grpc::ServerContext* context, const fleet::v1::WatchRolloutRequest* request,
    grpc::ServerWriter<RolloutEvent>* writer) {
  std::vector<RolloutEvent> messages;
  bool end_ok;
  int drop_after = -1;
  {
    absl::MutexLock lock(&mutex_);
    calls_.methods.push_back("WatchRollout");
    calls_.watch_after_sequences.push_back(request->after_sequence());
    if (watch_unavailable_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "going away");
    }
    if (request->rollout_id() != rollout_.rollout_id()) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          absl::StrCat("rollout \"", request->rollout_id(), "\" not found"));
    }
    int64_t after = request->after_sequence();
    if (after == 0) {
      RolloutEvent snapshot;
      snapshot.set_sequence(snapshot_sequence_);
      snapshot.mutable_event_time()->set_seconds(kRolloutCreateSeconds +
                                                 snapshot_sequence_);
      *snapshot.mutable_snapshot() = rollout_;
      snapshot.mutable_snapshot()->set_last_event_sequence(snapshot_sequence_);
      messages.push_back(std::move(snapshot));
      after = snapshot_sequence_;
    } else {
      after = std::max<int64_t>(0, after - resume_overlap_);
    }
    bool skip_next = request->after_sequence() > 0 && resume_skips_one_;
    for (const RolloutEvent& event : events_) {
      if (event.sequence() <= after) continue;
      if (skip_next) {
        skip_next = false;
        continue;
      }
      messages.push_back(event);
    }
    end_ok = end_ok_;
    drop_after = drop_first_watch_after_;
    drop_first_watch_after_ = -1;
  }
  int sent = 0;
  for (const RolloutEvent& message : messages) {
    if (drop_after >= 0 && sent == drop_after) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream dropped");
    }
    if (!writer->Write(message)) break;
    ++sent;
    if (!first_event_sent_.HasBeenNotified()) first_event_sent_.Notify();
  }
  if (drop_after >= 0 && sent == drop_after) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream dropped");
  }
  if (end_ok) return grpc::Status::OK;
  while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
  if (!watch_cancelled_.HasBeenNotified()) watch_cancelled_.Notify();
  return grpc::Status::CANCELLED;
}

grpc::Status FakeRolloutService::Action(
    const char* method, const fleet::v1::RolloutActionRequest& request,
    Rollout* response) {
  absl::MutexLock lock(&mutex_);
  calls_.action = request;
  if (auto error = Begin(method, request.rollout_id())) return *error;
  *response = rollout_;
  return grpc::Status::OK;
}

grpc::Status FakeRolloutService::PauseRollout(
    grpc::ServerContext*, const fleet::v1::RolloutActionRequest* request,
    Rollout* response) {
  return Action("PauseRollout", *request, response);
}

grpc::Status FakeRolloutService::ResumeRollout(
    grpc::ServerContext*, const fleet::v1::RolloutActionRequest* request,
    Rollout* response) {
  return Action("ResumeRollout", *request, response);
}

grpc::Status FakeRolloutService::AbortRollout(
    grpc::ServerContext*, const fleet::v1::RolloutActionRequest* request,
    Rollout* response) {
  return Action("AbortRollout", *request, response);
}

grpc::Status FakeRolloutService::RetryFailed(
    grpc::ServerContext*, const fleet::v1::RolloutActionRequest* request,
    Rollout* response) {
  return Action("RetryFailed", *request, response);
}

grpc::Status FakeRolloutService::RollbackRollout(
    grpc::ServerContext*, const fleet::v1::RollbackRolloutRequest* request,
    Rollout* response) {
  absl::MutexLock lock(&mutex_);
  calls_.rollback = *request;
  if (auto error = Begin("RollbackRollout", request->rollout_id())) {
    return *error;
  }
  *response = rollout_;
  return grpc::Status::OK;
}

grpc::Status FakeRolloutService::AttestGate(
    grpc::ServerContext*, const fleet::v1::AttestGateRequest* request,
    Rollout* response) {
  absl::MutexLock lock(&mutex_);
  calls_.attest = *request;
  if (auto error = Begin("AttestGate", request->rollout_id())) return *error;
  *response = rollout_;
  return grpc::Status::OK;
}

Rollout MakeRollout() {
  Rollout rollout;
  rollout.set_rollout_id("r-7");
  rollout.set_bundle_id("sha256:0123456789abcdef");
  rollout.set_bundle_name_version("ecliptix@1.2.0");
  rollout.set_selector("env=prod");
  rollout.mutable_strategy()->add_waves("1");
  rollout.mutable_strategy()->add_waves("100%");
  rollout.mutable_strategy()->set_failure_budget("0");
  rollout.set_state(fleet::v1::ROLLOUT_STATE_PENDING);
  rollout.set_wave_count(2);
  rollout.set_created_by("alice@host");
  rollout.mutable_create_time()->set_seconds(kRolloutCreateSeconds);
  rollout.add_phases("infrastructure");
  for (const auto& [id, wave] : std::vector<std::pair<std::string, int>>{
           {"db-1", 1}, {"db-2", 2}, {"db-3", 2}}) {
    fleet::v1::RolloutTarget* target = rollout.add_targets();
    target->set_database_id(id);
    target->set_wave(wave);
    target->set_state(fleet::v1::TARGET_STATE_PENDING);
  }
  return rollout;
}

std::vector<RolloutEvent> ScriptedRolloutEvents(
    fleet::v1::RolloutState final_state) {
  const bool db3_fails = final_state != fleet::v1::ROLLOUT_STATE_SUCCEEDED;
  std::vector<RolloutEvent> events;
  auto next = [&events]() -> RolloutEvent& {
    RolloutEvent& event = events.emplace_back();
    event.set_sequence(static_cast<int64_t>(events.size()));
    event.mutable_event_time()->set_seconds(kRolloutCreateSeconds +
                                            event.sequence());
    return event;
  };
  auto state = [&](fleet::v1::RolloutState state, const std::string& reason) {
    RolloutEvent& event = next();
    event.mutable_state_changed()->set_state(state);
    event.mutable_state_changed()->set_reason(reason);
  };
  auto wave = [&](int number, bool started, std::vector<std::string> ids) {
    RolloutEvent& event = next();
    event.mutable_wave()->set_wave(number);
    event.mutable_wave()->set_started(started);
    for (std::string& id : ids) event.mutable_wave()->add_database_ids(id);
  };
  auto target = [&](const std::string& id, int number,
                    fleet::v1::TargetState state, const std::string& error) {
    RolloutEvent& event = next();
    event.mutable_target()->set_database_id(id);
    event.mutable_target()->set_wave(number);
    event.mutable_target()->set_state(state);
    event.mutable_target()->set_error(error);
    // As the server says it: a failed run counts against the budget.
    event.mutable_target()->set_counts_against_budget(
        state == fleet::v1::TARGET_STATE_FAILED);
  };
  auto step = [&](const std::string& id) -> fleet::v1::DeploymentEvent& {
    RolloutEvent& event = next();
    event.mutable_deployment()->set_database_id(id);
    fleet::v1::DeploymentEvent& deployment =
        *event.mutable_deployment()->mutable_event();
    deployment.set_bundle_id("sha256:0123456789abcdef");
    deployment.set_phase("infrastructure");
    deployment.set_step("production-infrastructure");
    return deployment;
  };
  auto finished = [&](const std::string& id, fleet::v1::StepOutcome outcome,
                      int millis) {
    fleet::v1::StepFinished& done = *step(id).mutable_step_finished();
    done.set_outcome(outcome);
    done.mutable_duration()->set_nanos(millis * 1'000'000);
  };

  state(fleet::v1::ROLLOUT_STATE_RUNNING, "");                  // 1
  wave(1, true, {"db-1"});                                      // 2
  target("db-1", 1, fleet::v1::TARGET_STATE_RUNNING, "");       // 3
  step("db-1").mutable_step_started()->set_statement_count(3);  // 4
  finished("db-1", fleet::v1::STEP_OUTCOME_APPLIED, 35);        // 5
  target("db-1", 1, fleet::v1::TARGET_STATE_SUCCEEDED, "");     // 6
  wave(1, false, {"db-1"});                                     // 7
  wave(2, true, {"db-2", "db-3"});                              // 8
  target("db-2", 2, fleet::v1::TARGET_STATE_RUNNING, "");       // 9
  target("db-3", 2, fleet::v1::TARGET_STATE_RUNNING, "");       // 10
  finished("db-2", fleet::v1::STEP_OUTCOME_SKIPPED, 2);         // 11
  if (db3_fails) {
    fleet::v1::StepFailed& failed = *step("db-3").mutable_step_failed();  // 12
    failed.set_file("sqlite/001_infrastructure.sql");
    failed.set_statement_index(2);
    failed.set_line(14);
    failed.set_message("duplicate column name: tenant_id");
    failed.set_rolled_back(true);
    target("db-3", 2, fleet::v1::TARGET_STATE_FAILED,  // 13
           "infrastructure/production-infrastructure: duplicate column name: "
           "tenant_id");
  } else {
    finished("db-3", fleet::v1::STEP_OUTCOME_APPLIED, 1500);   // 12
    target("db-3", 2, fleet::v1::TARGET_STATE_SUCCEEDED, "");  // 13
  }
  target("db-2", 2, fleet::v1::TARGET_STATE_SUCCEEDED, "");          // 14
  wave(2, false, {"db-2", "db-3"});                                  // 15
  state(final_state, db3_fails ? "failure budget 0 exceeded" : "");  // 16
  return events;
}

}  // namespace ecliptix::testing
