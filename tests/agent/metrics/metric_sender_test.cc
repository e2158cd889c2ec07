// MetricSender with a fake transport (a writer per session that records or
// refuses): numbering within the agent instance, batches kept while no
// session is there, resent in order after a reconnect, dropped once
// acknowledged, and the memory bound with its drop count.
#include "agent/metrics/metric_sender.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ecliptix::agent {
namespace {

namespace v1 = ::ecliptix::fleet::v1;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// `count` samples named "s<first>", "s<first + 1>", ...
std::vector<v1::MetricSample> Samples(int first, int count) {
  std::vector<v1::MetricSample> samples;
  for (int i = first; i < first + count; ++i) {
    v1::MetricSample& sample = samples.emplace_back();
    sample.set_metric("procedure_calls");
    (*sample.mutable_labels())["procedure"] = absl::StrCat("s", i);
    sample.set_value(i);
  }
  return samples;
}

// One session of the fake transport: records what is written, and refuses
// writes after `accept` of them (the session broke).
class FakeSession {
 public:
  explicit FakeSession(int accept = 1'000'000) : accept_(accept) {}

  StreamListener::Writer writer() {
    return [this](v1::AgentMessage message) {
      absl::MutexLock lock(&mutex_);
      if (static_cast<int>(batches_.size()) >= accept_) return false;
      EXPECT_TRUE(message.has_metric_batch());
      batches_.push_back(message.metric_batch());
      return true;
    };
  }
  std::vector<v1::MetricBatch> batches() {
    absl::MutexLock lock(&mutex_);
    return batches_;
  }
  std::vector<uint64_t> sequences() {
    std::vector<uint64_t> result;
    for (const v1::MetricBatch& batch : batches())
      result.push_back(batch.sequence());
    return result;
  }
  bool Await(size_t count) {
    absl::MutexLock lock(&mutex_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return batches_.size() >= count;
    };
    return mutex_.AwaitWithTimeout(absl::Condition(&reached),
                                   absl::Seconds(10));
  }

 private:
  const int accept_;
  absl::Mutex mutex_;
  std::vector<v1::MetricBatch> batches_ ABSL_GUARDED_BY(mutex_);
};

// The labels of a batch's samples, in order.
std::vector<std::string> Names(const v1::MetricBatch& batch) {
  std::vector<std::string> names;
  for (const v1::MetricSample& sample : batch.samples())
    names.push_back(sample.labels().at("procedure"));
  return names;
}

v1::MetricAck Ack(const std::string& instance, uint64_t sequence) {
  v1::MetricAck ack;
  ack.set_agent_instance(instance);
  ack.set_sequence(sequence);
  return ack;
}

MetricSenderOptions SmallBatches() {
  MetricSenderOptions options;
  options.max_batch_samples = 2;
  return options;
}

TEST(MetricSenderTest, AnnouncesMetricsAndPicksARandomInstance) {
  MetricSender one;
  MetricSender two;
  EXPECT_THAT(one.Capabilities(), ElementsAre("metrics"));
  EXPECT_FALSE(one.agent_instance().empty());
  EXPECT_NE(one.agent_instance(), two.agent_instance());
}

TEST(MetricSenderTest, BatchesAreNumberedAndBoundedInSize) {
  MetricSender sender(SmallBatches());
  sender.Add(Samples(1, 5));
  FakeSession session;
  sender.SessionStarted(session.writer());
  EXPECT_EQ(sender.Flush(), 3u);
  const std::vector<v1::MetricBatch> batches = session.batches();
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_THAT(session.sequences(), ElementsAre(1, 2, 3));
  for (const v1::MetricBatch& batch : batches) {
    EXPECT_EQ(batch.agent_instance(), sender.agent_instance());
    EXPECT_EQ(batch.dropped_samples(), 0u);
  }
  EXPECT_THAT(Names(batches[0]), ElementsAre("s1", "s2"));
  EXPECT_THAT(Names(batches[1]), ElementsAre("s3", "s4"));
  EXPECT_THAT(Names(batches[2]), ElementsAre("s5"));
  // Written but kept until acknowledged; nothing is written twice on one
  // session.
  EXPECT_EQ(sender.pending_batches(), 3u);
  EXPECT_EQ(sender.Flush(), 0u);
  // New samples continue the numbering.
  sender.Add(Samples(6, 1));
  EXPECT_EQ(sender.Flush(), 1u);
  EXPECT_THAT(session.sequences(), ElementsAre(1, 2, 3, 4));
}

TEST(MetricSenderTest, KeepsBatchesWhileDisconnectedAndResendsInOrder) {
  MetricSender sender(SmallBatches());
  // No session yet: nothing is written, everything is kept.
  sender.Add(Samples(1, 4));
  EXPECT_EQ(sender.Flush(), 0u);
  EXPECT_EQ(sender.pending_samples(), 4u);

  FakeSession first;
  sender.SessionStarted(first.writer());
  EXPECT_EQ(sender.Flush(), 2u);
  sender.Acknowledged(Ack(sender.agent_instance(), 1));
  EXPECT_EQ(sender.pending_batches(), 1u);
  EXPECT_EQ(sender.acknowledged(), 1u);
  sender.SessionEnded();

  // While away: batch 2 (sent, unacknowledged) and the new samples wait.
  sender.Add(Samples(5, 3));
  EXPECT_EQ(sender.Flush(), 0u);
  EXPECT_EQ(sender.pending_batches(), 3u);

  FakeSession second;
  sender.SessionStarted(second.writer());
  EXPECT_EQ(sender.Flush(), 3u);
  // Batch 2 again with its number, then the new ones after it.
  EXPECT_THAT(second.sequences(), ElementsAre(2, 3, 4));
  const std::vector<v1::MetricBatch> resent = second.batches();
  EXPECT_THAT(Names(resent[0]), ElementsAre("s3", "s4"));
  EXPECT_THAT(Names(resent[1]), ElementsAre("s5", "s6"));
  EXPECT_THAT(Names(resent[2]), ElementsAre("s7"));
  EXPECT_EQ(resent[0].SerializeAsString(),
            first.batches()[1].SerializeAsString());

  // An ack covers everything up to its sequence.
  sender.Acknowledged(Ack(sender.agent_instance(), 4));
  EXPECT_EQ(sender.pending_batches(), 0u);
  EXPECT_EQ(sender.pending_samples(), 0u);
}

TEST(MetricSenderTest, AWriteThatFailsIsRetriedOnTheNextSession) {
  MetricSender sender(SmallBatches());
  sender.Add(Samples(1, 6));
  FakeSession breaks(/*accept=*/1);
  sender.SessionStarted(breaks.writer());
  // The second write fails: the session is given up, nothing more goes.
  EXPECT_EQ(sender.Flush(), 1u);
  EXPECT_EQ(sender.Flush(), 0u);
  EXPECT_THAT(breaks.sequences(), ElementsAre(1));

  FakeSession next;
  sender.SessionStarted(next.writer());
  EXPECT_EQ(sender.Flush(), 3u);
  EXPECT_THAT(next.sequences(), ElementsAre(1, 2, 3));
}

TEST(MetricSenderTest, AcksOfAnotherInstanceOrOtherMessagesChangeNothing) {
  MetricSender sender(SmallBatches());
  sender.Add(Samples(1, 2));
  FakeSession session;
  sender.SessionStarted(session.writer());
  EXPECT_EQ(sender.Flush(), 1u);
  sender.Acknowledged(Ack("ai-someone-else", 1));
  v1::ServerMessage other;
  other.mutable_message_error()->set_agent_sequence(3);
  sender.Received(other);
  EXPECT_EQ(sender.pending_batches(), 1u);
  v1::ServerMessage ack;
  *ack.mutable_metric_ack() = Ack(sender.agent_instance(), 1);
  sender.Received(ack);
  EXPECT_EQ(sender.pending_batches(), 0u);
}

TEST(MetricSenderTest, BoundDropsOldestFirstAndCountsThem) {
  MetricSenderOptions options = SmallBatches();
  options.max_buffered_samples = 5;
  MetricSender sender(options);
  // 12 samples in 6 batches while the server is away: only the newest 4
  // (two batches) fit in 5 samples.
  for (int i = 0; i < 6; ++i) sender.Add(Samples(2 * i + 1, 2));
  EXPECT_LE(sender.pending_samples(), 5u);
  EXPECT_EQ(sender.pending_samples(), 4u);
  EXPECT_EQ(sender.dropped_samples(), 8u);

  FakeSession session;
  sender.SessionStarted(session.writer());
  EXPECT_EQ(sender.Flush(), 2u);
  const std::vector<v1::MetricBatch> batches = session.batches();
  // No gap in the numbering: batches dropped before being sent never had a
  // number. The first batch sent reports the drops.
  EXPECT_THAT(session.sequences(), ElementsAre(1, 2));
  EXPECT_THAT(Names(batches[0]), ElementsAre("s9", "s10"));
  EXPECT_EQ(batches[0].dropped_samples(), 8u);
  EXPECT_THAT(Names(batches[1]), ElementsAre("s11", "s12"));
  EXPECT_EQ(batches[1].dropped_samples(), 0u);

  // Sent but unacknowledged batches count against the bound too: 4 new
  // samples push both out. Their drop is reported by the next batch.
  sender.Add(Samples(13, 4));
  EXPECT_EQ(sender.pending_samples(), 4u);
  EXPECT_EQ(sender.dropped_samples(), 12u);
  EXPECT_EQ(sender.Flush(), 2u);
  const std::vector<v1::MetricBatch> later = session.batches();
  ASSERT_EQ(later.size(), 4u);
  EXPECT_EQ(later[2].sequence(), 3u);
  EXPECT_THAT(Names(later[2]), ElementsAre("s13", "s14"));
  EXPECT_EQ(later[2].dropped_samples(), 4u);
  EXPECT_EQ(later[3].dropped_samples(), 0u);
}

TEST(MetricSenderTest, ByteBoundAlsoApplies) {
  MetricSenderOptions options = SmallBatches();
  options.max_buffered_bytes = 1;
  MetricSender sender(options);
  sender.Add(Samples(1, 4));
  // Nothing fits in a byte.
  EXPECT_EQ(sender.pending_batches(), 0u);
  EXPECT_EQ(sender.dropped_samples(), 4u);
}

TEST(MetricSenderTest, ThreadFlushesWhenASessionStarts) {
  MetricSender sender(SmallBatches());
  sender.Start();
  sender.Add(Samples(1, 3));
  FakeSession session;
  sender.SessionStarted(session.writer());
  ASSERT_TRUE(session.Await(2));
  sender.Add(Samples(4, 1));
  ASSERT_TRUE(session.Await(3));
  sender.Stop();
  EXPECT_THAT(session.sequences(), ElementsAre(1, 2, 3));
}

}  // namespace
}  // namespace ecliptix::agent
