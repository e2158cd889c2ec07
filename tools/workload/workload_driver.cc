#include "tools/workload/workload_driver.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/memory/memory.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/executor/data_guard.h"
#include "agent/executor/executor.h"
#include "agent/executor/history.h"
#include "agent/target/open_target.h"
#include "agent/target/target.h"
#include "common/bundle/bundle.h"
#include "common/logging.h"
#include "common/sql/database_url.h"

namespace ecliptix::workload {

// Stop() and the count of workers still running, shared by the driver and
// its workers.
struct RunControl {
  absl::Mutex mutex;
  bool stopping ABSL_GUARDED_BY(mutex) = false;
  int running ABSL_GUARDED_BY(mutex) = 0;

  bool Stopping() {
    absl::MutexLock lock(&mutex);
    return stopping;
  }
  // Waits `duration` unless Stop() comes first; true when stopping.
  bool WaitForStop(absl::Duration duration) {
    absl::MutexLock lock(&mutex);
    mutex.AwaitWithTimeout(absl::Condition(&stopping), duration);
    return stopping;
  }
};

namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::ecliptix::agent::Executor;
using ::ecliptix::agent::SqlParam;
using ::ecliptix::agent::Target;

constexpr char kCreateMembership[] = "CreateMembership";
constexpr char kLoginMembership[] = "LoginMembership";
constexpr char kStartVerificationFlow[] = "StartVerificationFlow";
constexpr char kCompleteVerificationFlow[] = "CompleteVerificationFlow";
constexpr char kCreateContext[] = "CreateAuthenticationContext";
constexpr char kValidateContext[] = "ValidateAuthenticationContext";
constexpr char kDeactivateContext[] = "DeactivateAuthenticationContext";
constexpr char kUpdateMembershipStatus[] = "UpdateMembershipStatus";
constexpr char kValidatePhoneNumber[] = "ValidatePhoneNumber";
constexpr char kGetCircuitBreakerState[] = "GetCircuitBreakerState";
constexpr char kRecordCircuitBreakerResult[] = "RecordCircuitBreakerResult";
// Read once per database before the run, not part of the mix.
constexpr char kGetConfigValue[] = "GetConfigValue";

// The circuits RecordCircuitBreakerResult reports on: the gateways an OTP or
// notification goes through.
const char* const kCircuits[] = {"sms-gateway", "email-gateway",
                                 "push-gateway"};

// Bounds on what a database's worker remembers, so a long run holds steady
// memory: the oldest flow or context is forgotten first (it stays in the
// database, where cleanups find it).
constexpr size_t kMaxPendingFlows = 256;
constexpr size_t kMaxOpenContexts = 256;
// How many unexpected failure messages a report keeps.
constexpr size_t kMaxUnexpectedErrors = 10;

// Phone numbers that fail E.164 on every engine (+, 7 to 15 digits, no
// leading 0).
const char* const kMalformedPhones[] = {
    "12345678", "+0123456789", "+1 555 0100", "+12", "+1234567890123456"};

// Settings the traffic adapts to, read from SystemConfiguration.
struct Settings {
  int max_failed_attempts = 5;
  int lockout_minutes = 15;
  int circuit_failure_threshold = 5;
};

// A deterministic generator: the same seed gives the same choices with any
// standard library (no std::*_distribution, whose output is unspecified).
class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}

  // In [0, n); 0 when n is 0.
  size_t Below(size_t n) { return n == 0 ? 0 : engine_() % n; }
  // In [0, 1).
  double Unit() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  bool Percent(double percent) { return Unit() * 100.0 < percent; }

  std::string Hex(int digits) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string text;
    for (int i = 0; i < digits; ++i) text.push_back(kDigits[engine_() % 16]);
    return text;
  }
  // A version-4 GUID in lower case.
  std::string Guid() {
    static constexpr char kVariant[] = "89ab";
    return absl::StrCat(Hex(8), "-", Hex(4), "-4", Hex(3), "-",
                        std::string(1, kVariant[engine_() % 4]), Hex(3), "-",
                        Hex(12));
  }

 private:
  std::mt19937_64 engine_;
};

bool IsRefusable(const std::string& operation) {
  // ValidatePhoneNumber answers IsValid = 0 for any input: it never refuses.
  return operation != kValidatePhoneNumber;
}

std::string Lower(absl::string_view text) {
  return absl::AsciiStrToLower(text);
}

// The value of `column` (PostgreSQL folds names to lower case) in the first
// row; nullopt when there is no such column or no row.
std::optional<std::string> Cell(const Executor::OperationResult& result,
                                absl::string_view column) {
  for (size_t i = 0; i < result.columns.size(); ++i) {
    if (absl::EqualsIgnoreCase(result.columns[i], column)) {
      if (result.rows.empty() || i >= result.rows[0].size()) {
        return std::nullopt;
      }
      return result.rows[0][i];
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::string> RequiredCell(
    const Executor::OperationResult& result, absl::string_view column) {
  std::optional<std::string> value = Cell(result, column);
  if (!value || value->empty()) {
    return absl::InternalError(
        absl::StrCat("the answer has no ", column,
                     " (columns: ", absl::StrJoin(result.columns, ", "), ")"));
  }
  return *value;
}

// The database's own message, without the "operation X, statement N: " the
// executor puts in front.
std::string DatabaseMessage(absl::string_view message) {
  if (absl::StartsWith(message, "operation ")) {
    const size_t colon = message.find(": ");
    if (colon != absl::string_view::npos) message.remove_prefix(colon + 2);
  }
  // SOCI's PostgreSQL backend puts its own words before libpq's "ERROR:  ",
  // psqlODBC has "ERROR: <message>;; Error while executing the query".
  if (const size_t error = message.find("ERROR: ");
      error != absl::string_view::npos) {
    message = absl::StripLeadingAsciiWhitespace(message.substr(error + 7));
  }
  std::string text(message);
  absl::StrReplaceAll({{";; Error while executing the query", ""}}, &text);
  message = text;
  // SOCI's SQLite backend puts its function's name in front
  // ("sqlite3_statement_backend::loadOne: ").
  const size_t scope = message.find("::");
  const size_t colon = message.find(": ");
  if (scope != absl::string_view::npos && colon != absl::string_view::npos &&
      scope < colon &&
      message.substr(0, colon).find(' ') == absl::string_view::npos) {
    message.remove_prefix(colon + 2);
  }
  return std::string(message);
}

std::string Plural(int64_t count, absl::string_view word) {
  return absl::StrCat(count, " ", word, count == 1 ? "" : "s");
}

std::string FormatSeconds(absl::Duration duration) {
  return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(duration));
}

double PerSecond(int64_t calls, absl::Duration duration) {
  const double seconds = absl::ToDoubleSeconds(duration);
  return seconds > 0 ? static_cast<double>(calls) / seconds : 0.0;
}

// "LoginMembership 3, CreateMembership 1" for a counter over operations.
std::string FailuresByOperation(
    const std::map<std::string, OperationStats>& operations,
    int64_t OperationStats::*counter) {
  std::vector<std::string> parts;
  for (const std::string& name : WorkloadOperations()) {
    auto it = operations.find(name);
    if (it != operations.end() && it->second.*counter > 0) {
      parts.push_back(absl::StrCat(name, " ", it->second.*counter));
    }
  }
  return absl::StrJoin(parts, ", ");
}

}  // namespace

// ---------------------------------------------------------------------------
// One database: its connection, its executor, what it has created so far and
// its counters. Loop() runs on the database's own thread; Snapshot() from any.
class DatabaseWorker {
 public:
  DatabaseWorker(std::unique_ptr<Target> target,
                 std::shared_ptr<const bundle::Bundle> bundle,
                 const WorkloadOptions& options, const Mix& mix,
                 Settings settings, uint64_t seed, std::string phone_nonce)
      : target_(std::move(target)),
        // Operations take no backups: the backup directory is never used.
        executor_(target_.get(), agent::ExecutorOptions{}),
        bundle_(std::move(bundle)),
        options_(options),
        mix_(mix),
        settings_(settings),
        random_(seed),
        phone_nonce_(std::move(phone_nonce)) {}

  const std::string& name() const { return target_->redacted_url(); }

  // Makes calls until `budget` (negative: no limit) is spent, `deadline`
  // passes or the driver stops, one every `interval` (zero: back to back)
  // starting at `first_due`.
  void Loop(RunControl& control, int64_t budget, absl::Time deadline,
            absl::Duration interval, absl::Time first_due) {
    absl::Time due = first_due;
    for (int64_t made = 0; budget < 0 || made < budget; ++made) {
      if (interval > absl::ZeroDuration()) {
        const absl::Time now = absl::Now();
        // After a stall (a slow call, a locked database) the pace resumes
        // from now instead of bursting to catch up.
        if (now - due > absl::Seconds(1)) due = now;
        if (due >= deadline) break;
        if (due > now && control.WaitForStop(due - now)) break;
        due += interval;
      }
      if (control.Stopping() || absl::Now() >= deadline) break;
      Make(NextCall());
    }
  }

  struct Counters {
    std::map<std::string, OperationStats> operations;
    std::vector<std::string> unexpected_errors;
    int64_t calls = 0;
  };
  Counters Snapshot() const {
    absl::MutexLock lock(&counters_mutex_);
    return counters_;
  }

 private:
  struct Member {
    std::string phone;
    std::string secure_key;
    std::string id;
    std::string status = "active";
    // Failed logins since the last success, as far as this worker knows.
    int recent_failures = 0;
    // Locked out (by the database) until then.
    absl::Time locked_until = absl::InfinitePast();
    // Being brute-forced: left alone by the ordinary logins.
    bool victim = false;
  };
  struct PendingFlow {
    std::string id;
    std::string otp_hash;
    // Every completion attempt is wrong, until OTP.MaxAttempts fails it.
    bool brute_force = false;
  };
  struct OpenContext {
    std::string token;
    size_t member = 0;
  };
  // The phone number being brute-forced: a member's or an unknown one.
  struct Victim {
    std::string phone;
    std::optional<size_t> member;
    int blocked = 0;  // LOCKED_OUT answers so far.
  };

  // One call to make.
  struct Call {
    std::string operation;
    std::map<std::string, std::string> arguments;
    // Bad input: the message the operation is expected to refuse it with.
    std::string refusal;
    // Bad input: what is wrong with it, for people.
    std::string bad_input;
    // The answer's column counted in the outcomes.
    std::string outcome_column;
    // Applied to the worker's state after a successful call; an error counts
    // the call as failed unexpectedly.
    std::function<absl::Status(const Executor::OperationResult&)> on_success;
  };

  // ---- Choosing the next call.

  Call NextCall() {
    std::string operation = members_.size() < size_t(options_.pool_size)
                                ? kCreateMembership
                                : PickOperation(/*refusable_only=*/false);
    if (random_.Percent(options_.error_percent)) {
      if (!IsRefusable(operation)) {
        operation = PickOperation(/*refusable_only=*/true);
      }
      return BadCall(operation);
    }
    return GoodCall(operation);
  }

  std::string PickOperation(bool refusable_only) {
    double total = 0;
    for (const std::string& name : WorkloadOperations()) {
      if (refusable_only && !IsRefusable(name)) continue;
      auto it = mix_.find(name);
      if (it != mix_.end()) total += it->second;
    }
    if (total <= 0) return kCreateMembership;
    double point = random_.Unit() * total;
    std::string last = kCreateMembership;
    for (const std::string& name : WorkloadOperations()) {
      if (refusable_only && !IsRefusable(name)) continue;
      auto it = mix_.find(name);
      if (it == mix_.end() || it->second <= 0) continue;
      last = name;
      if (point < it->second) return name;
      point -= it->second;
    }
    return last;
  }

  Call GoodCall(const std::string& operation) {
    if (operation == kCreateMembership) return CreateMembership();
    if (operation == kLoginMembership) return Login();
    if (operation == kStartVerificationFlow) return StartFlow();
    if (operation == kCompleteVerificationFlow) {
      return flows_.empty() ? StartFlow() : CompleteFlow();
    }
    if (operation == kCreateContext) return CreateContext();
    if (operation == kValidateContext) {
      return contexts_.empty() ? CreateContext() : ValidateContext();
    }
    if (operation == kDeactivateContext) {
      return contexts_.empty() ? CreateContext() : DeactivateContext();
    }
    if (operation == kUpdateMembershipStatus) return UpdateStatus();
    if (operation == kValidatePhoneNumber) return ValidatePhone();
    if (operation == kGetCircuitBreakerState) return GetCircuit();
    return RecordCircuit();
  }

  // Fresh numbers: "+4" (members), "+5" (never registered), "+6" (OTP
  // registrations), the run's nonce, a counter: 14 digits.
  std::string NewPhone(char kind) {
    return absl::StrFormat("+%c%s%07d", kind, phone_nonce_,
                           ++phone_counter_ % 10000000);
  }
  std::string NewKey() { return random_.Hex(64); }

  std::vector<size_t> Members(const std::function<bool(const Member&)>& ok) {
    std::vector<size_t> found;
    for (size_t i = 0; i < members_.size(); ++i) {
      if (ok(members_[i])) found.push_back(i);
    }
    return found;
  }
  // Active members that can log in now and are not being brute-forced.
  std::vector<size_t> LoginMembers(absl::Time now) {
    return Members([now](const Member& m) {
      return m.status == "active" && !m.victim && m.locked_until <= now;
    });
  }
  std::vector<size_t> ActiveMembers() {
    return Members(
        [](const Member& m) { return m.status == "active" && !m.victim; });
  }
  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[random_.Below(items.size())];
  }

  Call CreateMembership() {
    Call call;
    call.operation = kCreateMembership;
    Member member;
    member.phone = NewPhone('4');
    member.secure_key = NewKey();
    call.arguments = {{"PhoneNumber", member.phone},
                      {"SecureKey", member.secure_key}};
    call.on_success =
        [this,
         member](const Executor::OperationResult& result) -> absl::Status {
      absl::StatusOr<std::string> id = RequiredCell(result, "MembershipId");
      if (!id.ok()) return id.status();
      Member added = member;
      added.id = Lower(*id);
      members_.push_back(std::move(added));
      return absl::OkStatus();
    };
    return call;
  }

  Call LoginCall(const std::string& phone, const std::string& key) {
    Call call;
    call.operation = kLoginMembership;
    call.arguments = {{"PhoneNumber", phone}, {"SecureKey", key}};
    call.outcome_column = "Outcome";
    return call;
  }

  absl::Duration Lockout() const {
    return absl::Minutes(settings_.lockout_minutes);
  }

  Call Login() {
    const absl::Time now = absl::Now();
    if (random_.Percent(options_.failed_login_percent)) {
      // A user mistyping once in a while (never up to a lockout), but mostly
      // someone hammering one number: that is what reaches
      // Authentication.MaxFailedAttempts and LOGIN_BLOCKED.
      std::vector<size_t> typists = Members([&](const Member& m) {
        return m.status == "active" && !m.victim && m.locked_until <= now &&
               m.recent_failures + 1 < settings_.max_failed_attempts;
      });
      if (random_.Percent(75) || typists.empty()) return BruteForceLogin();
      const size_t index = Pick(typists);
      Call call = LoginCall(members_[index].phone, NewKey());
      call.on_success = [this, index](const Executor::OperationResult& result) {
        NoteLogin(index, Cell(result, "Outcome").value_or(""));
        return absl::OkStatus();
      };
      return call;
    }
    std::vector<size_t> candidates = LoginMembers(now);
    if (candidates.empty()) return CreateMembership();
    const size_t index = Pick(candidates);
    Call call = LoginCall(members_[index].phone, members_[index].secure_key);
    call.on_success = [this, index](const Executor::OperationResult& result) {
      NoteLogin(index, Cell(result, "Outcome").value_or(""));
      return absl::OkStatus();
    };
    return call;
  }

  void NoteLogin(size_t index, const std::string& outcome) {
    Member& member = members_[index];
    if (outcome == "SUCCESS") {
      member.recent_failures = 0;
    } else if (outcome == "LOCKED_OUT") {
      member.locked_until = absl::Now() + Lockout();
    } else {
      ++member.recent_failures;
    }
  }

  Call BruteForceLogin() {
    if (!victim_) {
      Victim victim;
      std::vector<size_t> members = LoginMembers(absl::Now());
      // Keep most members for ordinary traffic.
      if (random_.Percent(50) && members.size() > 1) {
        victim.member = Pick(members);
        members_[*victim.member].victim = true;
        victim.phone = members_[*victim.member].phone;
      } else {
        victim.phone = NewPhone('5');
      }
      victim_ = victim;
    }
    Call call = LoginCall(victim_->phone, NewKey());
    call.on_success =
        [this](const Executor::OperationResult& result) -> absl::Status {
      if (!victim_ || Cell(result, "Outcome").value_or("") != "LOCKED_OUT") {
        return absl::OkStatus();
      }
      // A couple of attempts while locked out (LOGIN_BLOCKED), then the
      // attacker moves on to another number.
      if (++victim_->blocked >= 2) {
        if (victim_->member) {
          Member& member = members_[*victim_->member];
          member.victim = false;
          member.locked_until = absl::Now() + Lockout() + absl::Minutes(1);
        }
        victim_.reset();
      }
      return absl::OkStatus();
    };
    return call;
  }

  Call StartFlow() {
    Call call;
    call.operation = kStartVerificationFlow;
    std::string purpose = "registration";
    std::string phone;
    std::vector<size_t> members = ActiveMembers();
    if (!members.empty() && random_.Percent(60)) {
      purpose = random_.Percent(67) ? "login" : "recovery";
      phone = members_[Pick(members)].phone;
    } else {
      phone = NewPhone('6');
    }
    const std::string otp = random_.Hex(64);
    // Some codes are short-lived, so that flows expire.
    const std::string seconds = random_.Percent(25) ? "30" : "300";
    call.arguments = {{"PhoneNumber", phone},
                      {"Purpose", purpose},
                      {"OtpHash", otp},
                      {"ValidForSeconds", seconds}};
    const double fate = random_.Unit();
    call.on_success =
        [this, otp,
         fate](const Executor::OperationResult& result) -> absl::Status {
      absl::StatusOr<std::string> id = RequiredCell(result, "FlowId");
      if (!id.ok()) return id.status();
      // One in ten is abandoned (never completed: it stays pending until it
      // expires), one in ten is guessed at until it fails.
      if (fate < 0.1) return absl::OkStatus();
      if (flows_.size() >= kMaxPendingFlows) flows_.erase(flows_.begin());
      flows_.push_back({Lower(*id), otp, /*brute_force=*/fate < 0.2});
      return absl::OkStatus();
    };
    return call;
  }

  Call CompleteFlow() {
    const PendingFlow flow = Pick(flows_);
    Call call;
    call.operation = kCompleteVerificationFlow;
    const bool wrong = flow.brute_force || random_.Percent(15);
    call.arguments = {{"FlowId", flow.id},
                      {"OtpHash", wrong ? random_.Hex(64) : flow.otp_hash}};
    call.outcome_column = "Outcome";
    call.on_success = [this,
                       id = flow.id](const Executor::OperationResult& result) {
      // INVALID_OTP leaves the flow pending; every other answer ends it.
      if (Cell(result, "Outcome").value_or("") != "INVALID_OTP") {
        flows_.erase(
            std::remove_if(flows_.begin(), flows_.end(),
                           [&](const PendingFlow& f) { return f.id == id; }),
            flows_.end());
      }
      return absl::OkStatus();
    };
    return call;
  }

  Call CreateContext() {
    std::vector<size_t> members = ActiveMembers();
    if (members.empty()) return CreateMembership();
    const size_t index = Pick(members);
    Call call;
    call.operation = kCreateContext;
    // Some contexts live a minute, so that they expire during a run.
    const int minutes =
        random_.Percent(25) ? 1 : 30 + static_cast<int>(random_.Below(211));
    call.arguments = {{"MembershipId", members_[index].id},
                      {"ValidForMinutes", absl::StrCat(minutes)}};
    call.on_success =
        [this, index](const Executor::OperationResult& result) -> absl::Status {
      absl::StatusOr<std::string> token = RequiredCell(result, "ContextToken");
      if (!token.ok()) return token.status();
      if (contexts_.size() >= kMaxOpenContexts) {
        contexts_.erase(contexts_.begin());
      }
      contexts_.push_back({Lower(*token), index});
      return absl::OkStatus();
    };
    return call;
  }

  void ForgetContext(const std::string& token) {
    contexts_.erase(std::remove_if(contexts_.begin(), contexts_.end(),
                                   [&](const OpenContext& context) {
                                     return context.token == token;
                                   }),
                    contexts_.end());
  }

  Call ValidateContext() {
    Call call;
    call.operation = kValidateContext;
    call.outcome_column = "IsValid";
    // Now and then a client presents a token the database never issued (a
    // result, IsValid = 0, not an error).
    if (random_.Percent(5)) {
      call.arguments = {{"ContextToken", random_.Guid()}};
      return call;
    }
    const std::string token = Pick(contexts_).token;
    call.arguments = {{"ContextToken", token}};
    call.on_success = [this, token](const Executor::OperationResult& result) {
      if (Cell(result, "IsValid").value_or("") != "1") ForgetContext(token);
      return absl::OkStatus();
    };
    return call;
  }

  Call DeactivateContext() {
    Call call;
    call.operation = kDeactivateContext;
    call.outcome_column = "Deactivated";
    const std::string token = Pick(contexts_).token;
    call.arguments = {{"ContextToken", token}};
    call.on_success = [this, token](const Executor::OperationResult&) {
      ForgetContext(token);
      return absl::OkStatus();
    };
    return call;
  }

  Call UpdateStatus() {
    std::vector<size_t> inactive = Members(
        [](const Member& m) { return m.status != "active" && !m.victim; });
    std::vector<size_t> active = ActiveMembers();
    size_t index = 0;
    std::string status;
    // At least half the pool stays active for the logins.
    if (!inactive.empty() &&
        (random_.Percent(50) ||
         active.size() <= size_t(options_.pool_size) / 2)) {
      index = Pick(inactive);
      status = "active";
    } else if (!active.empty()) {
      index = Pick(active);
      status = random_.Percent(70) ? "inactive" : "blocked";
    } else {
      return CreateMembership();
    }
    Call call;
    call.operation = kUpdateMembershipStatus;
    call.arguments = {{"MembershipId", members_[index].id}, {"Status", status}};
    call.outcome_column = "Status";
    call.on_success = [this, index, status](const Executor::OperationResult&) {
      members_[index].status = status;
      // The database deactivated the member's contexts.
      if (status != "active") {
        contexts_.erase(std::remove_if(contexts_.begin(), contexts_.end(),
                                       [&](const OpenContext& context) {
                                         return context.member == index;
                                       }),
                        contexts_.end());
      }
      return absl::OkStatus();
    };
    return call;
  }

  Call ValidatePhone() {
    Call call;
    call.operation = kValidatePhoneNumber;
    call.outcome_column = "IsValid";
    std::string phone;
    if (random_.Percent(20)) {
      // What a user types: answered IsValid = 0, not refused.
      phone = kMalformedPhones[random_.Below(std::size(kMalformedPhones))];
    } else if (!members_.empty() && random_.Percent(50)) {
      phone = Pick(members_).phone;
    } else {
      phone = NewPhone('6');
    }
    call.arguments = {{"PhoneNumber", phone}};
    return call;
  }

  Call GetCircuit() {
    Call call;
    call.operation = kGetCircuitBreakerState;
    call.outcome_column = "State";
    call.arguments = {{"Name", kCircuits[random_.Below(std::size(kCircuits))]}};
    return call;
  }

  Call RecordCircuit() {
    const size_t circuit = random_.Below(std::size(kCircuits));
    bool succeeded = true;
    if (outages_[circuit] > 0) {
      --outages_[circuit];
      succeeded = false;
    } else if (random_.Percent(2)) {
      // A gateway outage: CircuitBreaker.FailureThreshold failures in a row,
      // which open the circuit (CIRCUIT_OPENED); a later success closes it.
      outages_[circuit] = std::max(0, settings_.circuit_failure_threshold - 1);
      succeeded = false;
    } else {
      succeeded = !random_.Percent(3);
    }
    Call call;
    call.operation = kRecordCircuitBreakerResult;
    call.outcome_column = "State";
    call.arguments = {{"Name", kCircuits[circuit]},
                      {"Succeeded", succeeded ? "true" : "false"}};
    return call;
  }

  // Input `operation` refuses on every engine, with the message expected.
  Call BadCall(const std::string& operation) {
    Call call;
    call.operation = operation;
    auto refuse = [&call](std::string bad_input, std::string refusal) {
      call.bad_input = std::move(bad_input);
      call.refusal = std::move(refusal);
    };
    const std::string malformed_phone =
        kMalformedPhones[random_.Below(std::size(kMalformedPhones))];
    const size_t variant = random_.Below(3);
    if (operation == kCreateMembership) {
      if (variant == 0 && !members_.empty()) {
        call.arguments = {{"PhoneNumber", Pick(members_).phone},
                          {"SecureKey", NewKey()}};
        refuse("a phone number already registered", "already exists");
      } else if (variant == 1) {
        call.arguments = {{"PhoneNumber", NewPhone('5')},
                          {"SecureKey", "short"}};
        refuse("a secure key shorter than 8 characters", "Invalid secure key");
      } else {
        call.arguments = {{"PhoneNumber", malformed_phone},
                          {"SecureKey", NewKey()}};
        refuse("a malformed phone number", "Invalid phone number");
      }
    } else if (operation == kLoginMembership) {
      call.arguments = {{"PhoneNumber", malformed_phone},
                        {"SecureKey", NewKey()}};
      refuse("a malformed phone number", "Invalid phone number");
    } else if (operation == kStartVerificationFlow) {
      call.arguments = {{"PhoneNumber", NewPhone('6')},
                        {"Purpose", "registration"},
                        {"OtpHash", random_.Hex(64)},
                        {"ValidForSeconds", "300"}};
      if (variant == 0) {
        call.arguments["Purpose"] = "signup";
        refuse("an unknown purpose", "Invalid purpose");
      } else if (variant == 1) {
        call.arguments["ValidForSeconds"] = "5";
        refuse("ValidForSeconds below 30", "Invalid ValidForSeconds");
      } else {
        call.arguments["PhoneNumber"] = malformed_phone;
        refuse("a malformed phone number", "Invalid phone number");
      }
    } else if (operation == kCompleteVerificationFlow) {
      call.arguments = {{"OtpHash", random_.Hex(64)}};
      if (variant == 0) {
        call.arguments["FlowId"] = "not-a-flow-id";
        refuse("a malformed flow id", "Invalid identifier");
      } else {
        call.arguments["FlowId"] = random_.Guid();
        refuse("an unknown flow id", "Verification flow not found");
      }
    } else if (operation == kCreateContext) {
      call.arguments = {{"MembershipId", random_.Guid()},
                        {"ValidForMinutes", "60"}};
      if (variant == 0) {
        call.arguments["MembershipId"] = "not-a-membership-id";
        refuse("a malformed membership id", "Invalid identifier");
      } else if (variant == 1) {
        call.arguments["ValidForMinutes"] = "0";
        refuse("ValidForMinutes 0", "Invalid ValidForMinutes");
      } else {
        refuse("an unknown membership", "Membership not found");
      }
    } else if (operation == kValidateContext ||
               operation == kDeactivateContext) {
      call.arguments = {{"ContextToken", "not-a-context-token"}};
      refuse("a malformed context token", "Invalid identifier");
    } else if (operation == kUpdateMembershipStatus) {
      const std::string id =
          members_.empty() ? random_.Guid() : Pick(members_).id;
      if (variant == 0) {
        call.arguments = {{"MembershipId", id}, {"Status", "suspended"}};
        refuse("an unknown status", "Invalid status");
      } else {
        call.arguments = {{"MembershipId", random_.Guid()},
                          {"Status", "inactive"}};
        refuse("an unknown membership", "Membership not found");
      }
    } else {
      // The circuit breaker: a name longer than 128 characters.
      call.arguments = {{"Name", std::string(129 + variant, 'x')}};
      if (operation == kRecordCircuitBreakerResult) {
        call.arguments["Succeeded"] = "true";
      }
      refuse("a circuit name longer than 128 characters",
             "Invalid circuit breaker name");
    }
    return call;
  }

  // ---- Making a call and counting it.

  void Make(const Call& call) {
    absl::StatusOr<Executor::OperationResult> result =
        executor_.CallOperation(*bundle_, call.operation, call.arguments);
    std::string unexpected;
    bool on_purpose = false;
    std::string outcome;
    if (!call.refusal.empty()) {
      if (result.ok()) {
        unexpected = absl::StrCat("accepted ", call.bad_input,
                                  " instead of refusing it");
      } else if (absl::StrContains(result.status().message(), call.refusal)) {
        on_purpose = true;
      } else {
        unexpected = absl::StrCat("refused ", call.bad_input,
                                  " with another error than \"", call.refusal,
                                  "\": ", result.status().ToString());
      }
    } else if (!result.ok()) {
      unexpected = result.status().ToString();
    } else {
      if (call.on_success) {
        absl::Status applied = call.on_success(*result);
        if (!applied.ok()) unexpected = std::string(applied.message());
      }
      if (unexpected.empty() && !call.outcome_column.empty()) {
        const std::string value =
            Cell(*result, call.outcome_column).value_or("(none)");
        outcome = call.outcome_column == "Outcome"
                      ? value
                      : absl::StrCat(call.outcome_column, "=", value);
      }
    }
    if (!result.ok() && options_.error_log) {
      LogError(call, DatabaseMessage(result.status().message()));
    }

    absl::MutexLock lock(&counters_mutex_);
    ++counters_.calls;
    OperationStats& stats = counters_.operations[call.operation];
    ++stats.calls;
    if (on_purpose) {
      ++stats.failed_on_purpose;
    } else if (!unexpected.empty()) {
      ++stats.failed_unexpectedly;
      const std::string line =
          absl::StrCat(name(), ": ", call.operation, ": ", unexpected);
      if (counters_.unexpected_errors.size() < kMaxUnexpectedErrors &&
          std::find(counters_.unexpected_errors.begin(),
                    counters_.unexpected_errors.end(),
                    line) == counters_.unexpected_errors.end()) {
        counters_.unexpected_errors.push_back(line);
      }
    } else {
      ++stats.succeeded;
      if (!outcome.empty()) ++stats.outcomes[outcome];
    }
  }

  // The row the application's error handler would write (SQL Server's
  // procedures write it themselves in their CATCH blocks). Secrets are left
  // out of Parameters, as the procedures do.
  void LogError(const Call& call, const std::string& message) {
    if (error_log_broken_) return;
    std::vector<std::string> fields;
    for (const auto& [name, value] : call.arguments) {
      if (name == "SecureKey" || name == "OtpHash") continue;
      fields.push_back(absl::StrCat("\"", JsonEscape(name), "\":\"",
                                    JsonEscape(value), "\""));
    }
    const std::string parameters =
        absl::StrCat("{", absl::StrJoin(fields, ","), "}");
    std::string statement;
    switch (target_->engine()) {
      case v1::ENGINE_SQLITE:
        statement =
            "INSERT INTO ErrorLog (ProcedureName, ErrorMessage, ErrorSeverity, "
            "Parameters) VALUES (:ProcedureName, :ErrorMessage, 16, "
            ":Parameters)";
        break;
      case v1::ENGINE_POSTGRESQL:
        statement =
            "INSERT INTO dbo.ErrorLog (ProcedureName, ErrorMessage, "
            "ErrorSeverity, Parameters) VALUES (:ProcedureName, "
            ":ErrorMessage, 16, CAST(:Parameters AS jsonb))";
        break;
      default:
        statement =
            "INSERT INTO dbo.ErrorLog (ProcedureName, ErrorMessage, "
            "ErrorSeverity, Parameters) VALUES (:ProcedureName, "
            ":ErrorMessage, 16, :Parameters)";
        break;
    }
    absl::Status status = target_->Execute(
        statement, {SqlParam::Text("ProcedureName", call.operation),
                    SqlParam::Text("ErrorMessage", message),
                    SqlParam::Text("Parameters", parameters)});
    if (!status.ok()) {
      // Said once; the calls go on without ErrorLog rows.
      error_log_broken_ = true;
      Logger("workload")
          ->warn("{}: cannot write ErrorLog rows: {}", name(),
                 status.ToString());
    }
  }

  const std::unique_ptr<Target> target_;
  Executor executor_;
  const std::shared_ptr<const bundle::Bundle> bundle_;
  const WorkloadOptions& options_;
  const Mix& mix_;
  const Settings settings_;

  // Used by the database's thread only.
  Random random_;
  const std::string phone_nonce_;
  int64_t phone_counter_ = 0;
  std::vector<Member> members_;
  std::vector<PendingFlow> flows_;
  std::vector<OpenContext> contexts_;
  std::optional<Victim> victim_;
  int outages_[std::size(kCircuits)] = {};
  bool error_log_broken_ = false;

  mutable absl::Mutex counters_mutex_;
  Counters counters_ ABSL_GUARDED_BY(counters_mutex_);
};

// ---------------------------------------------------------------------------

const std::vector<std::string>& WorkloadOperations() {
  static const auto* operations = new std::vector<std::string>{
      kCreateMembership,
      kLoginMembership,
      kStartVerificationFlow,
      kCompleteVerificationFlow,
      kCreateContext,
      kValidateContext,
      kDeactivateContext,
      kUpdateMembershipStatus,
      kValidatePhoneNumber,
      kGetCircuitBreakerState,
      kRecordCircuitBreakerResult,
  };
  return *operations;
}

const Mix& DefaultMix() {
  // Logins and context checks dominate, as in an application's traffic;
  // status changes and the circuit breaker are rare.
  static const auto* mix = new Mix{
      {kCreateMembership, 5},
      {kLoginMembership, 30},
      {kStartVerificationFlow, 10},
      {kCompleteVerificationFlow, 10},
      {kCreateContext, 12},
      {kValidateContext, 18},
      {kDeactivateContext, 6},
      {kUpdateMembershipStatus, 2},
      {kValidatePhoneNumber, 3},
      {kGetCircuitBreakerState, 2},
      {kRecordCircuitBreakerResult, 2},
  };
  return *mix;
}

absl::StatusOr<Mix> ParseMix(absl::string_view text) {
  Mix mix;
  for (const std::string& name : WorkloadOperations()) mix[name] = 0;
  double total = 0;
  for (absl::string_view part :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    const size_t equals = part.find('=');
    if (equals == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mix takes Operation=weight,...; \"", part, "\" has no weight"));
    }
    const absl::string_view name =
        absl::StripAsciiWhitespace(part.substr(0, equals));
    const absl::string_view weight_text =
        absl::StripAsciiWhitespace(part.substr(equals + 1));
    const std::string* known = nullptr;
    for (const std::string& operation : WorkloadOperations()) {
      if (absl::EqualsIgnoreCase(operation, name)) known = &operation;
    }
    if (known == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mix: unknown operation \"", name, "\"; the workload calls ",
          absl::StrJoin(WorkloadOperations(), ", ")));
    }
    double weight = 0;
    if (!absl::SimpleAtod(weight_text, &weight) || !(weight >= 0) ||
        weight > 1e9) {
      return absl::InvalidArgumentError(
          absl::StrCat("--mix: the weight of ", *known,
                       " must be a number >= 0, not \"", weight_text, "\""));
    }
    mix[*known] = weight;
  }
  for (const auto& [name, weight] : mix) total += weight;
  if (total <= 0) {
    return absl::InvalidArgumentError(
        "--mix: give at least one operation a weight above 0");
  }
  return mix;
}

void OperationStats::Add(const OperationStats& other) {
  calls += other.calls;
  succeeded += other.succeeded;
  failed_on_purpose += other.failed_on_purpose;
  failed_unexpectedly += other.failed_unexpectedly;
  for (const auto& [outcome, count] : other.outcomes) {
    outcomes[outcome] += count;
  }
}

OperationStats WorkloadReport::Total() const {
  OperationStats total;
  for (const auto& [name, stats] : operations) total.Add(stats);
  total.outcomes.clear();
  return total;
}

std::string FormatSummary(const WorkloadReport& report) {
  const OperationStats total = report.Total();
  std::string text = absl::StrFormat(
      "workload: %s on %s in %s (%.1f/s), seed %d\n",
      Plural(total.calls, "call"),
      Plural(static_cast<int64_t>(report.calls_by_database.size()), "database"),
      FormatSeconds(report.elapsed), PerSecond(total.calls, report.elapsed),
      report.seed);
  auto row = [&text](const std::string& name, const std::string& calls,
                     const std::string& ok, const std::string& on_purpose,
                     const std::string& unexpectedly) {
    absl::StrAppend(
        &text, absl::StrFormat("%-32s %8s %8s %18s %20s\n", name, calls, ok,
                               on_purpose, unexpectedly));
  };
  row("OPERATION", "CALLS", "OK", "FAILED ON PURPOSE", "FAILED UNEXPECTEDLY");
  auto line = [&row](const std::string& name, const OperationStats& stats) {
    row(name, absl::StrCat(stats.calls), absl::StrCat(stats.succeeded),
        absl::StrCat(stats.failed_on_purpose),
        absl::StrCat(stats.failed_unexpectedly));
  };
  for (const std::string& name : WorkloadOperations()) {
    auto it = report.operations.find(name);
    if (it != report.operations.end()) line(name, it->second);
  }
  line("TOTAL", total);
  std::vector<std::string> answers;
  for (const std::string& name : WorkloadOperations()) {
    auto it = report.operations.find(name);
    if (it == report.operations.end() || it->second.outcomes.empty()) continue;
    std::vector<std::string> counts;
    for (const auto& [outcome, count] : it->second.outcomes) {
      counts.push_back(absl::StrCat(outcome, " ", count));
    }
    answers.push_back(
        absl::StrCat("  ", name, ": ", absl::StrJoin(counts, ", "), "\n"));
  }
  if (!answers.empty()) {
    absl::StrAppend(&text, "answers:\n", absl::StrJoin(answers, ""));
  }
  if (report.calls_by_database.size() > 1) {
    absl::StrAppend(&text, "calls by database:\n");
    for (const auto& [database, calls] : report.calls_by_database) {
      absl::StrAppend(&text, "  ", database, ": ", calls, "\n");
    }
  }
  if (!report.unexpected_errors.empty()) {
    absl::StrAppend(&text, "unexpected failures (first ",
                    report.unexpected_errors.size(), "):\n");
    for (const std::string& error : report.unexpected_errors) {
      absl::StrAppend(&text, "  ", error, "\n");
    }
  }
  return text;
}

absl::Status ValidateOptions(const WorkloadOptions& options) {
  if (options.database_urls.empty()) {
    return absl::InvalidArgumentError("give at least one --database");
  }
  std::set<std::string> seen;
  for (const std::string& url : options.database_urls) {
    if (!seen.insert(url).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--database ", sql::RedactDatabaseUrl(url), " is given twice"));
    }
    absl::StatusOr<sql::DatabaseUrl> parsed = sql::ParseDatabaseUrl(url);
    if (!parsed.ok()) return parsed.status();
  }
  if (!(options.rate >= 0)) {
    return absl::InvalidArgumentError(
        "--rate is calls per second, 0 or more (0: as fast as possible)");
  }
  if (options.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--duration must be positive");
  }
  if (options.max_calls < 0) {
    return absl::InvalidArgumentError("--calls must be 0 or more");
  }
  if (!(options.error_percent >= 0 && options.error_percent <= 100)) {
    return absl::InvalidArgumentError("--error_percent is 0 to 100");
  }
  if (!(options.failed_login_percent >= 0 &&
        options.failed_login_percent <= 100)) {
    return absl::InvalidArgumentError("--failed_login_percent is 0 to 100");
  }
  if (options.pool_size < 1 || options.pool_size > 1000000) {
    return absl::InvalidArgumentError("--pool_size is 1 to 1000000");
  }
  if (options.progress_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--progress_interval must be positive");
  }
  double total = 0;
  for (const auto& [name, weight] : options.mix) {
    if (std::find(WorkloadOperations().begin(), WorkloadOperations().end(),
                  name) == WorkloadOperations().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("mix: unknown operation \"", name, "\""));
    }
    if (!(weight >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("mix: the weight of ", name, " is negative"));
    }
    total += weight;
  }
  if (!options.mix.empty() && total <= 0) {
    return absl::InvalidArgumentError("mix: every weight is 0");
  }
  return absl::OkStatus();
}

namespace {

// FAILED_PRECONDITION naming what is missing when the bundle's steps are not
// all in place on `database` (their detect queries say which objects exist).
absl::Status CheckDeployed(Target& database, const bundle::Bundle& bundle,
                           const std::string& bundle_dir) {
  const v1::Dialect dialect = bundle::DialectForEngine(database.engine());
  const v1::BundleManifest& manifest = bundle.manifest();
  if (std::find(manifest.dialects().begin(), manifest.dialects().end(),
                dialect) == manifest.dialects().end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database ", database.redacted_url(), ": bundle ", manifest.name(),
        " has no SQL for ", bundle::DialectName(dialect)));
  }
  std::vector<std::string> missing;
  // Read when a detect query cannot run.
  std::optional<agent::CurrentRows> history;
  for (const v1::Phase& phase : manifest.phases()) {
    for (const v1::Step& step : phase.steps()) {
      const std::string& query = bundle::SqlFor(step.detect(), dialect);
      if (absl::StripAsciiWhitespace(query).empty()) continue;
      absl::StatusOr<agent::Detection> found = agent::Detect(database, query);
      if (!found.ok()) {
        // Some drivers cannot run a detect query (psqlODBC answers "Failed
        // to get result columns count"): the schema history then says
        // whether the step is in place.
        if (!history) {
          agent::History reader(&database);
          absl::StatusOr<agent::CurrentRows> rows =
              reader.LoadCurrent(manifest.name());
          if (!rows.ok()) {
            return absl::Status(
                rows.status().code(),
                absl::StrCat(
                    "database ", database.redacted_url(),
                    ": cannot check step ", phase.name(), "/", step.name(),
                    ": ", found.status().message(),
                    "; reading the schema history: ", rows.status().message()));
          }
          history = *std::move(rows);
        }
        auto current = history->find({phase.name(), step.name()});
        if (current == history->end() ||
            !agent::IsInEffect(current->second.outcome)) {
          missing.push_back(
              absl::StrCat("step ", phase.name(), "/", step.name(),
                           " (not applied according to the schema history)"));
        }
        continue;
      }
      if (!found->missing.empty()) {
        // A few names per step say enough; a fresh database misses them all.
        constexpr size_t kNamesShown = 4;
        std::vector<std::string> names(
            found->missing.begin(),
            found->missing.begin() +
                std::min(kNamesShown, found->missing.size()));
        if (found->missing.size() > kNamesShown) {
          names.push_back(
              absl::StrCat(found->missing.size() - kNamesShown, " more"));
        }
        missing.push_back(absl::StrCat("step ", phase.name(), "/", step.name(),
                                       " (", absl::StrJoin(names, ", "), ")"));
      }
    }
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "database ", database.redacted_url(), ": bundle ", manifest.name(), " ",
      manifest.version(),
      " is not deployed there, missing: ", absl::StrJoin(missing, "; "),
      ". Deploy it first: ecliptix-agent apply "
      "--bundle=",
      bundle_dir, " --database=", database.redacted_url()));
}

// OpenTarget, except that a SQLite file must exist: SQLite would create an
// empty one for a mistyped path.
absl::StatusOr<std::unique_ptr<Target>> OpenDatabase(const std::string& url) {
  absl::StatusOr<sql::DatabaseUrl> parsed = sql::ParseDatabaseUrl(url);
  if (!parsed.ok()) return parsed.status();
  if (parsed->backend == sql::Backend::kSqlite) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(parsed->sqlite_path, error)) {
      return absl::NotFoundError(
          absl::StrCat("database ", parsed->redacted,
                       ": no such file (the workload needs "
                       "a database where the bundle is deployed)"));
    }
  }
  return agent::OpenTarget(url);
}

absl::StatusOr<Settings> ReadSettings(Target& database, Executor& executor,
                                      const bundle::Bundle& bundle) {
  Settings settings;
  const std::pair<const char*, int*> keys[] = {
      {"Authentication.MaxFailedAttempts", &settings.max_failed_attempts},
      {"Authentication.LockoutDurationMinutes", &settings.lockout_minutes},
      {"CircuitBreaker.FailureThreshold", &settings.circuit_failure_threshold},
  };
  for (const auto& [key, value] : keys) {
    absl::StatusOr<Executor::OperationResult> result =
        executor.CallOperation(bundle, kGetConfigValue, {{"ConfigKey", key}});
    if (!result.ok()) {
      return absl::Status(
          result.status().code(),
          absl::StrCat("database ", database.redacted_url(), ": reading ", key,
                       ": ", result.status().message()));
    }
    int parsed = 0;
    // A key someone removed keeps the runbook's default.
    if (absl::SimpleAtoi(Cell(*result, "ConfigValue").value_or(""), &parsed) &&
        parsed > 0) {
      *value = parsed;
    }
  }
  return settings;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkloadDriver>> WorkloadDriver::Create(
    WorkloadOptions options) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) {
    return status;
  }
  if (options.mix.empty()) options.mix = DefaultMix();
  absl::StatusOr<bundle::Bundle> loaded =
      bundle::Bundle::LoadDirectory(options.bundle_dir);
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bundle ", options.bundle_dir, ": ", loaded.status().message()));
  }
  auto bundle = std::make_shared<const bundle::Bundle>(*std::move(loaded));
  std::vector<std::string> absent;
  std::vector<std::string> needed = WorkloadOperations();
  needed.push_back(kGetConfigValue);
  for (const std::string& operation : needed) {
    if (bundle->FindOperation(operation) == nullptr) {
      absent.push_back(operation);
    }
  }
  if (!absent.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "bundle ", bundle->manifest().name(), " (", options.bundle_dir,
        ") has no operation ", absl::StrJoin(absent, ", "),
        ": the workload calls the Ecliptix operations"));
  }

  // Distinct from any earlier run's numbers, seed or not: memberships of
  // another run may already be in the database.
  std::random_device device;
  const std::string nonce = absl::StrFormat("%06d", device() % 1000000);

  // The driver owns options_; the workers read the driver's copy.
  auto driver = absl::WrapUnique(new WorkloadDriver(std::move(options), {}));
  std::vector<std::string> problems;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (size_t i = 0; i < driver->options_.database_urls.size(); ++i) {
    const std::string& url = driver->options_.database_urls[i];
    absl::StatusOr<std::unique_ptr<Target>> target = OpenDatabase(url);
    absl::Status status = target.status();
    std::optional<Settings> settings;
    if (status.ok()) {
      status = CheckDeployed(**target, *bundle, driver->options_.bundle_dir);
    }
    if (status.ok()) {
      Executor probe(target->get(), agent::ExecutorOptions{});
      absl::StatusOr<Settings> read = ReadSettings(**target, probe, *bundle);
      status = read.status();
      if (read.ok()) settings = *read;
    }
    if (!status.ok()) {
      if (code == absl::StatusCode::kOk) code = status.code();
      problems.emplace_back(status.message());
      continue;
    }
    // Each database its own generator, so threads never change the choices.
    const uint64_t seed =
        driver->options_.seed ^ (0x9e3779b97f4a7c15ULL * (i + 1));
    driver->workers_.push_back(std::make_unique<DatabaseWorker>(
        *std::move(target), bundle, driver->options_, driver->options_.mix,
        *settings, seed, nonce));
  }
  if (!problems.empty()) {
    return absl::Status(code, absl::StrJoin(problems, "\n"));
  }
  return driver;
}

WorkloadDriver::WorkloadDriver(
    WorkloadOptions options,
    std::vector<std::unique_ptr<DatabaseWorker>> workers)
    : options_(std::move(options)),
      workers_(std::move(workers)),
      control_(std::make_unique<RunControl>()) {}

WorkloadDriver::~WorkloadDriver() = default;

void WorkloadDriver::Stop() {
  absl::MutexLock lock(&control_->mutex);
  control_->stopping = true;
}

WorkloadReport WorkloadDriver::Snapshot() const {
  WorkloadReport report;
  report.seed = options_.seed;
  for (const auto& worker : workers_) {
    DatabaseWorker::Counters counters = worker->Snapshot();
    for (const auto& [name, stats] : counters.operations) {
      report.operations[name].Add(stats);
    }
    report.calls_by_database.emplace_back(worker->name(), counters.calls);
    for (const std::string& error : counters.unexpected_errors) {
      if (report.unexpected_errors.size() < kMaxUnexpectedErrors) {
        report.unexpected_errors.push_back(error);
      }
    }
  }
  return report;
}

WorkloadReport WorkloadDriver::Run(std::FILE* progress) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = options_.duration == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : start + options_.duration;
  const int count = static_cast<int>(workers_.size());
  // Each database gets an equal share of the rate, staggered so that the
  // calls are spread over the interval rather than made all at once.
  const absl::Duration interval = options_.rate > 0
                                      ? absl::Seconds(count / options_.rate)
                                      : absl::ZeroDuration();
  {
    absl::MutexLock lock(&control_->mutex);
    control_->running = count;
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < count; ++i) {
    int64_t budget = -1;
    if (options_.max_calls > 0) {
      budget = options_.max_calls / count + (i < options_.max_calls % count);
    }
    const absl::Time first_due = start + interval * i / count;
    threads.emplace_back([this, i, budget, deadline, interval, first_due] {
      workers_[i]->Loop(*control_, budget, deadline, interval, first_due);
      absl::MutexLock lock(&control_->mutex);
      --control_->running;
    });
  }

  int64_t calls_before = 0;
  absl::Time before = start;
  while (true) {
    {
      absl::MutexLock lock(&control_->mutex);
      control_->mutex.AwaitWithTimeout(
          absl::Condition(
              +[](int* running) { return *running == 0; }, &control_->running),
          options_.progress_interval);
      if (control_->running == 0) break;
    }
    if (progress == nullptr) continue;
    const absl::Time now = absl::Now();
    const WorkloadReport snapshot = Snapshot();
    const OperationStats total = snapshot.Total();
    std::string line =
        absl::StrFormat("workload: %s: %s, %.1f/s (%.1f/s overall",
                        FormatSeconds(now - start), Plural(total.calls, "call"),
                        PerSecond(total.calls - calls_before, now - before),
                        PerSecond(total.calls, now - start));
    // Slow databases (a SQLite commit waits for the disk) cannot keep up
    // with any rate: the line says what was asked.
    if (options_.rate > 0) {
      absl::StrAppend(&line, absl::StrFormat(", asked %g/s", options_.rate));
    }
    absl::StrAppend(&line, "); failed on purpose ", total.failed_on_purpose);
    if (total.failed_on_purpose > 0) {
      absl::StrAppend(&line, " (",
                      FailuresByOperation(snapshot.operations,
                                          &OperationStats::failed_on_purpose),
                      ")");
    }
    absl::StrAppend(&line, ", unexpectedly ", total.failed_unexpectedly);
    if (total.failed_unexpectedly > 0) {
      absl::StrAppend(&line, " (",
                      FailuresByOperation(snapshot.operations,
                                          &OperationStats::failed_unexpectedly),
                      ")");
    }
    std::fprintf(progress, "%s\n", line.c_str());
    std::fflush(progress);
    calls_before = total.calls;
    before = now;
  }
  for (std::thread& thread : threads) thread.join();
  WorkloadReport report = Snapshot();
  report.elapsed = absl::Now() - start;
  return report;
}

}  // namespace ecliptix::workload
