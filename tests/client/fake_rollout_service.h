// A scripted in-process RolloutService for unit tests of the client library
// and ecliptixctl's rollout commands: answers every call with a configured
// rollout (or plan), records the requests it got, and replays a fixed event log
// to watches, honouring after_sequence, with an injectable stream drop.
#ifndef ECLIPTIX_TESTS_CLIENT_FAKE_ROLLOUT_SERVICE_H_
#define ECLIPTIX_TESTS_CLIENT_FAKE_ROLLOUT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ecliptix/fleet/v1/rollout.grpc.pb.h"

namespace ecliptix::testing {

class FakeRolloutService final : public fleet::v1::RolloutService::Service {
 public:
  // What every unary call answers (calls naming another rollout id get
  // NOT_FOUND), and the snapshot of watches from 0.
  void SetRollout(fleet::v1::Rollout rollout);
  // What PlanRollout answers.
  void SetPlan(fleet::v1::RolloutPlan plan);
  // What ListRollouts pages through (token = offset; page_size 0 means 2, so
  // tests see paging).
  void SetListed(std::vector<fleet::v1::Rollout> rollouts);
  // Every unary call fails with this status.
  void SetError(std::optional<grpc::Status> error);

  // The event log, sequences 1..N in order. A watch from 0 sends the snapshot
  // (the rollout, with the sequence `snapshot_sequence`) and then the events
  // after it; a watch after S sends the events after S. Then the stream ends
  // OK (`end_ok`: the rollout is final) or stays open until cancelled.
  void SetEvents(std::vector<fleet::v1::RolloutEvent> events,
                 int64_t snapshot_sequence = 0, bool end_ok = true);
  // The first watch sends `messages` messages, then ends with UNAVAILABLE (a
  // dropped stream). Later watches are not affected.
  void DropFirstWatchAfter(int messages);
  // Watches that resume after S start `overlap` events earlier (a server that
  // sends some events again).
  void SetResumeOverlap(int overlap);
  // Watches that resume after S skip the event S+1 (a broken server).
  void SetResumeSkipsOne(bool skip);
  // Every watch ends with UNAVAILABLE at once.
  void SetWatchUnavailable(bool unavailable);

  // What the service was asked.
  struct Calls {
    std::vector<std::string> methods;  // in order, e.g. "PauseRollout"
    std::optional<fleet::v1::CreateRolloutRequest> create;
    std::optional<fleet::v1::CreateRolloutRequest> plan;
    // How long PlanRollout's caller would wait, as seen by the server.
    absl::Duration plan_deadline = absl::ZeroDuration();
    std::optional<fleet::v1::RolloutActionRequest> action;
    std::optional<fleet::v1::RollbackRolloutRequest> rollback;
    std::optional<fleet::v1::AttestGateRequest> attest;
    std::vector<fleet::v1::ListRolloutsRequest> lists;
    std::vector<int64_t> watch_after_sequences;
  };
  Calls calls() const;
  // Notified when a watch saw its client cancel.
  absl::Notification& watch_cancelled() { return watch_cancelled_; }
  // Notified when the first message of a watch has been written.
  absl::Notification& first_event_sent() { return first_event_sent_; }

  grpc::Status CreateRollout(grpc::ServerContext* context,
                             const fleet::v1::CreateRolloutRequest* request,
                             fleet::v1::Rollout* response) override;
  grpc::Status PlanRollout(grpc::ServerContext* context,
                           const fleet::v1::CreateRolloutRequest* request,
                           fleet::v1::RolloutPlan* response) override;
  grpc::Status GetRollout(grpc::ServerContext* context,
                          const fleet::v1::GetRolloutRequest* request,
                          fleet::v1::Rollout* response) override;
  grpc::Status ListRollouts(grpc::ServerContext* context,
                            const fleet::v1::ListRolloutsRequest* request,
                            fleet::v1::ListRolloutsResponse* response) override;
  grpc::Status WatchRollout(
      grpc::ServerContext* context,
      const fleet::v1::WatchRolloutRequest* request,
      grpc::ServerWriter<fleet::v1::RolloutEvent>* writer) override;
  grpc::Status PauseRollout(grpc::ServerContext* context,
                            const fleet::v1::RolloutActionRequest* request,
                            fleet::v1::Rollout* response) override;
  grpc::Status ResumeRollout(grpc::ServerContext* context,
                             const fleet::v1::RolloutActionRequest* request,
                             fleet::v1::Rollout* response) override;
  grpc::Status AbortRollout(grpc::ServerContext* context,
                            const fleet::v1::RolloutActionRequest* request,
                            fleet::v1::Rollout* response) override;
  grpc::Status RollbackRollout(grpc::ServerContext* context,
                               const fleet::v1::RollbackRolloutRequest* request,
                               fleet::v1::Rollout* response) override;
  grpc::Status AttestGate(grpc::ServerContext* context,
                          const fleet::v1::AttestGateRequest* request,
                          fleet::v1::Rollout* response) override;
  grpc::Status RetryFailed(grpc::ServerContext* context,
                           const fleet::v1::RolloutActionRequest* request,
                           fleet::v1::Rollout* response) override;

 private:
  // Records the call; the error to answer with, if any.
  std::optional<grpc::Status> Begin(const char* method,
                                    const std::string& rollout_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  grpc::Status Action(const char* method,
                      const fleet::v1::RolloutActionRequest& request,
                      fleet::v1::Rollout* response);

  mutable absl::Mutex mutex_;
  fleet::v1::Rollout rollout_ ABSL_GUARDED_BY(mutex_);
  fleet::v1::RolloutPlan plan_ ABSL_GUARDED_BY(mutex_);
  std::vector<fleet::v1::Rollout> listed_ ABSL_GUARDED_BY(mutex_);
  std::optional<grpc::Status> error_ ABSL_GUARDED_BY(mutex_);
  std::vector<fleet::v1::RolloutEvent> events_ ABSL_GUARDED_BY(mutex_);
  int64_t snapshot_sequence_ ABSL_GUARDED_BY(mutex_) = 0;
  bool end_ok_ ABSL_GUARDED_BY(mutex_) = true;
  int drop_first_watch_after_ ABSL_GUARDED_BY(mutex_) = -1;
  int resume_overlap_ ABSL_GUARDED_BY(mutex_) = 0;
  bool resume_skips_one_ ABSL_GUARDED_BY(mutex_) = false;
  bool watch_unavailable_ ABSL_GUARDED_BY(mutex_) = false;
  Calls calls_ ABSL_GUARDED_BY(mutex_);
  absl::Notification watch_cancelled_;
  absl::Notification first_event_sent_;
};

// When the scripted rollout was created (2023-11-14T22:13:20Z); event N
// happens N seconds later.
inline constexpr int64_t kRolloutCreateSeconds = 1'700'000'000;

// Rollout r-7 of ecliptix@1.2.0 before it starts: db-1 in wave 1, db-2 and db-3
// in wave 2, failure budget 0, state PENDING.
fleet::v1::Rollout MakeRollout();

// Its events, sequences 1 to 16: it starts, wave 1 deploys db-1 (one step
// applied in 35 ms), wave 2 deploys db-2 (its step skipped) and db-3, which
// fails (step failed, target failed) unless `final_state` is SUCCEEDED, and
// the rollout ends in `final_state`.
std::vector<fleet::v1::RolloutEvent> ScriptedRolloutEvents(
    fleet::v1::RolloutState final_state);

}  // namespace ecliptix::testing

#endif  // ECLIPTIX_TESTS_CLIENT_FAKE_ROLLOUT_SERVICE_H_
