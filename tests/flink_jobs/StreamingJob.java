import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * Unbounded test job: generates 10 records a second and discards them.
 *
 * <p>It never finishes on its own, so it stays RUNNING until cancelled.
 * Usage: {@code StreamingJob [job-name]} (default name "streaming-job").
 */
public class StreamingJob {

    public static void main(String[] args) throws Exception {
        String jobName = args.length > 0 ? args[0] : "streaming-job";
        StreamExecutionEnvironment env =
                StreamExecutionEnvironment.getExecutionEnvironment();

        // Long.MAX_VALUE records at 10/s is "forever" while costing no CPU.
        GeneratorFunction<Long, String> generator = index -> "event-" + index;
        DataGeneratorSource<String> source =
                new DataGeneratorSource<>(
                        generator,
                        Long.MAX_VALUE,
                        RateLimiterStrategy.perSecond(10),
                        Types.STRING);

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "generator")
                .map(String::length)
                .returns(Types.INT)
                .name("length")
                .sinkTo(new DiscardingSink<>())
                .name("discard");

        env.execute(jobName);
    }
}
